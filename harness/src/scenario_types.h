/* scenario_types — the plain structs of a loaded scenario (routes, responses, CORS
 * policies, SSE and WebSocket scripts), apart from the functions that load them.
 *
 * The loader's readers (ld.h) build these types and the server reads them; neither needs
 * scenario.h's loading API, so keeping the types here keeps the loader modules out of a
 * cycle through scenario.c. Ownership is as scenario.h says: a struct scenario owns
 * everything it points to.
 */
#ifndef HARNESS_SCENARIO_TYPES_H
#define HARNESS_SCENARIO_TYPES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "diag.h"
#include "origins.h"
#include "rx.h"
#include "tmpl.h"

struct bytes {
    unsigned char *data; /* owned; NUL-terminated for convenience (not counted in len) */
    size_t len;
};

enum match_op { MATCH_EQUALS, MATCH_REGEX, MATCH_PRESENT, MATCH_ABSENT, MATCH_JSON };

/* One query-parameter or header condition of a route (or of a response's `require`). */
struct value_match {
    char *name;
    enum match_op op;
    char *value;  /* MATCH_EQUALS: the value; MATCH_REGEX: the source of re */
    struct rx re; /* compiled when op == MATCH_REGEX (the regex dialect, rx.h) */
    json_t *json; /* MATCH_JSON (match.body only): the value is JSON containing this subset
                   * (json_subset, route.h); owned */
};

struct header {
    char *name;
    struct tmpl *value;
};

struct header_list {
    struct header *items;
    size_t n;
};

enum transfer { TRANSFER_LENGTH, TRANSFER_CHUNKED };
enum fault_action { FAULT_NONE, FAULT_CLOSE, FAULT_RESET, FAULT_HANG };
enum body_kind {
    BODY_NONE,
    BODY_TEXT,  /* body_tmpl: text with placeholders */
    BODY_BYTES, /* body: exact bytes (body_base64, body_file, preset) */
};
/* What a stream (stream, sse) does after its last item. */
enum stream_end { END_CLOSE, END_HANG, END_RESET };

/* Bytes written one write() each, with a pause before each (`chunks:` of a response, the
 * `raw` step of a WebSocket script): the exact write boundaries a parser test needs. */
struct raw_chunk {
    uint64_t pause_ms; /* before this chunk: after the previous one (the first: the start) */
    struct bytes bytes;
};
struct raw_chunks {
    struct raw_chunk *items;
    size_t n;
};
/* How the TCP connection ends after a response or a WebSocket session (`end:`). */
enum conn_end {
    CONN_END_DEFAULT, /* what the kind does anyway (keep-alive, or a FIN) */
    CONN_END_FIN,     /* a clean close (FIN) */
    CONN_END_RST,     /* a TCP reset (SO_LINGER 0) */
    CONN_END_HANG,    /* nothing more; the server frees it when the client goes */
};

/* --- JSONP (`jsonp:`): body = CALLBACK(DATA); --------------------------------------- */
struct jsonp_spec {
    char *param;     /* query parameter holding the callback name; default "callback" */
    char *data_json; /* the argument, serialized JSON (from `data`, or `data_json` text) */
    bool throws;     /* `throw: MESSAGE`: the body throws instead of calling back */
    char *throw_message;
};

/* --- long polling (`long_poll:`) ---------------------------------------------------- */
enum lp_format { LP_JSON, LP_TEXT };
struct long_poll_spec {
    char *channel;               /* a name from server.channels */
    char *cursor_param;          /* query parameter with the index of the next event wanted;
                                  * NULL: the route keeps the cursor itself */
    uint64_t hold_timeout_ms;    /* default 30000 */
    struct response *on_timeout; /* answered when nothing came in time; NULL: 204 */
    enum lp_format format;       /* json (default): {"cursor":N,"events":[{"id":i,"data":D}]};
                                  * text: the data of the first pending event */
};

/* A channel of events for long polls: scheduled ones plus what the control API publishes. */
struct channel_event {
    uint64_t after_ms; /* since the instance was loaded */
    struct bytes data;
};
struct channel {
    char *name;
    struct channel_event *events;
    size_t n_events;
};

/* --- HTTP streaming (`stream:`): one chunk per item --------------------------------- */
struct stream_chunk {
    uint64_t after_ms; /* since the previous chunk (the first: since the headers) */
    struct tmpl *data; /* text with placeholders, or NULL when bytes is used */
    struct bytes bytes;
};

/* --- Server-Sent Events (`sse:`) ---------------------------------------------------- */
enum sse_line_ending { SSE_LF, SSE_CR, SSE_CRLF, SSE_MIXED }; /* mixed: LF, CR, CRLF in turn */
enum sse_item_kind {
    SSE_EVENT, /* fields below; each present one written in the order comment, event, id,
                * retry, data (data split on LF into several data: lines) */
    SSE_LINES, /* `lines`: each line written as is, followed by the line ending */
    SSE_RAW,   /* `raw` / `raw_base64`: exact bytes, nothing added */
};
struct sse_item {
    enum sse_item_kind kind;
    uint64_t after_ms; /* since the previous item */
    /* SSE_EVENT: a NULL data/len 0 with has_x false means "no such field" */
    bool has_data, has_id, has_event, has_retry, has_comment;
    struct bytes data; /* `data`, or `data_size` bytes of 'x' */
    struct bytes id;   /* may contain NUL */
    struct bytes event;
    struct bytes retry; /* written as given: an invalid retry is a string like "1s" */
    struct bytes comment;
    bool no_blank_line; /* `blank_line: false`: the event is not terminated */
    /* SSE_LINES */
    struct bytes *lines;
    size_t n_lines;
    /* SSE_RAW */
    struct bytes raw;
};
struct sse_spec {
    enum sse_line_ending line_ending; /* default lf */
    bool bom;                         /* a UTF-8 BOM first */
    bool data_space;                  /* "data: x" (default) or "data:x" */
    bool final_blank_line;            /* default true: the last event ends with its blank line */
    char *content_type; /* default "text/event-stream"; "" sends none; headers may override */
    struct sse_item *items;
    size_t n_items;
    enum stream_end then; /* default close */
    /* The bytes on the wire, the same for every stream: sse_encode()'s pieces, made once on
     * the first request (plan.c, published atomically) and freed with the spec. */
    struct sse_wire *wire;
};
struct piece;
struct sse_wire {
    struct piece *pieces;
    size_t n;
};

/* --- WebSockets (`websocket:`) ------------------------------------------------------ */
/* correct, wrong, omit; case_flipped: the right value with its letters' case swapped (a
 * different value: base64 is case-sensitive); padded: the right value with spaces and a
 * tab around it (optional whitespace, RFC 9110 5.5); duplicate: the right header twice */
enum ws_accept_mode {
    WS_ACCEPT_CORRECT,
    WS_ACCEPT_WRONG,
    WS_ACCEPT_OMIT,
    WS_ACCEPT_CASE_FLIPPED,
    WS_ACCEPT_PADDED,
    WS_ACCEPT_DUPLICATE,
};
enum ws_subproto_mode { WS_SUB_FIRST_OFFERED, WS_SUB_NONE, WS_SUB_NAMED };
struct ws_handshake_spec {
    int status;                        /* 101 (default), or e.g. 200 / 403: not upgraded */
    enum ws_subproto_mode subprotocol; /* default: first offered */
    char *subprotocol_name;            /* WS_SUB_NAMED: sent even if not offered */
    char *extensions;                  /* Sec-WebSocket-Extensions value to send, or NULL */
    enum ws_accept_mode accept;        /* default correct */
    bool upgrade_header;               /* default true: send "Upgrade: websocket" */
    char *upgrade_value;               /* NULL: "websocket" */
    struct header_list headers;        /* extra headers on the handshake response */
    char *connection;                  /* the Connection value of a 101; NULL: "Upgrade" */
};
enum ws_step_kind {
    WS_SEND,    /* a text or binary message, optionally in `fragments` frames */
    WS_PING,    /* payload */
    WS_PONG,    /* an unsolicited pong */
    WS_WAIT,    /* ms */
    WS_RECEIVE, /* wait for one message from the client (timeout_ms), journal it */
    WS_ECHO,    /* echo `count` messages back (0: until the client closes), timeout_ms each */
    WS_FRAME,   /* one frame exactly as described (malformed on purpose) */
    WS_CLOSE,   /* a close frame (code, reason), then wait for the client's (timeout_ms) */
    WS_DROP,    /* close the TCP connection without a close frame (drop_end: how) */
    WS_RAW,     /* exact bytes in chunks (one write each, a pause before each) */
};
struct ws_step {
    enum ws_step_kind kind;
    struct src_loc loc;
    bool binary;          /* WS_SEND: binary instead of text */
    struct bytes payload; /* WS_SEND, WS_PING, WS_PONG, WS_FRAME payload; WS_CLOSE reason */
    unsigned fragments;   /* WS_SEND: 0/1 = one frame */
    uint64_t ms;          /* WS_WAIT duration; WS_RECEIVE/WS_ECHO/WS_CLOSE timeout */
    unsigned count;       /* WS_ECHO */
    /* WS_FRAME */
    int opcode; /* 0..15 */
    bool fin, rsv1, rsv2, rsv3, masked;
    int length_form; /* 0: the shortest; 7, 16 or 64: that length encoding */
    bool has_length; /* `length`: the header announces this, whatever the payload */
    uint64_t length;
    size_t *split_at; /* `split_at`: offsets where the frame's bytes are cut into writes */
    size_t n_split;
    uint64_t pause_ms; /* `pause`: before each piece after the first */
    /* WS_RAW */
    struct raw_chunks chunks;
    /* WS_DROP */
    enum conn_end drop_end; /* fin, rst or hang; default (drop: true): websocket.end */
    /* WS_CLOSE */
    bool has_code; /* false: a close frame with an empty payload */
    int code;      /* any 0..65535, including the ones not allowed on the wire */
    bool go_on;    /* `continue: true`: the script goes on without waiting for the reply */
};
struct ws_spec {
    struct ws_handshake_spec handshake;
    struct ws_step *steps;
    size_t n_steps;
    /* After the script: wait this long for the client to close, then close (default 5000). */
    uint64_t linger_ms;
    enum conn_end end; /* how the TCP connection ends after the session (default: FIN) */
};

/* --- CORS (route-level `cors:`) ------------------------------------------------------ */
enum acao_mode { ACAO_ECHO, ACAO_STAR, ACAO_NONE, ACAO_WRONG, ACAO_EXACT };
enum preflight_mode { PREFLIGHT_AUTO, PREFLIGHT_NONE, PREFLIGHT_SCRIPTED };
struct cors_policy {
    enum acao_mode allow_origin; /* default echo */
    char *allow_origin_value;    /* ACAO_EXACT: the value; ACAO_WRONG: default
                                  * "http://wrong.example" */
    char *allow_credentials;     /* NULL: absent; "true", or a wrong value as written */
    char *allow_methods;         /* NULL: not sent (lists are joined with ", ") */
    char *allow_headers;
    char *expose_headers;
    long max_age;     /* < 0: not sent */
    bool vary_origin; /* default true */
    enum preflight_mode preflight;
    struct response *preflight_response; /* PREFLIGHT_SCRIPTED */
};

/* --- a response ---------------------------------------------------------------------- */
enum response_kind {
    RESP_PLAIN, /* status, headers, body (with trickle, faults) */
    RESP_RAW,   /* raw / raw_base64 / chunks: exact bytes */
    RESP_JSONP,
    RESP_LONG_POLL,
    RESP_STREAM,
    RESP_SSE,
    RESP_WEBSOCKET,
};

struct response {
    struct src_loc loc; /* where this response is written */
    enum response_kind kind;
    int status;   /* 100..999, default 200 */
    char *reason; /* NULL: the standard phrase */
    struct header_list headers;

    enum body_kind body_kind;
    struct tmpl *body_tmpl;
    struct bytes body; /* BODY_BYTES; `preset: gif|png` fills it with a 1x1 image */
    char *preset_type; /* the preset's Content-Type, added unless headers give one */

    /* RESP_RAW: the whole response as exact bytes (raw_tmpl for `raw`, raw_bytes for
     * `raw_base64`); status, reason, headers and body are unused then. */
    struct tmpl *raw_tmpl;
    struct bytes raw_bytes;
    struct raw_chunks chunks; /* `chunks`: the whole response in writes with pauses */
    enum conn_end end;        /* `end`: after the whole response (plain, raw, chunks) */

    uint64_t delay_ms;      /* before the status line */
    uint64_t body_delay_ms; /* after the headers, before the first body byte */
    size_t trickle_bytes;   /* 0: no trickle, the whole body at once */
    uint64_t trickle_every_ms;
    enum transfer transfer;

    enum fault_action fault;
    bool fault_has_after; /* false: fault before anything is sent */
    size_t fault_after_bytes;

    /* `require: {headers: {...}}`: conditions the request should meet; the journal
     * records whether they held (require_met) and the response is sent either way. */
    struct value_match *require_headers;
    size_t n_require_headers;

    struct jsonp_spec *jsonp;         /* RESP_JSONP */
    struct long_poll_spec *long_poll; /* RESP_LONG_POLL */
    struct stream_chunk *stream;      /* RESP_STREAM */
    size_t n_stream;
    enum stream_end stream_then; /* RESP_STREAM: after the last chunk */
    struct sse_spec *sse;        /* RESP_SSE */
    struct ws_spec *websocket;   /* RESP_WEBSOCKET */

    /* The server's response object when this response is the same for every request
     * (deliver.h: built by the first request, shared read-only by the others), released by
     * reply_free when the response is freed; NULL until then. */
    void *reply;
    void (*reply_free)(void *reply);
};

enum after_last { AFTER_REPEAT, AFTER_CYCLE, AFTER_NOT_FOUND };

struct route {
    struct src_loc loc;
    char *name;     /* given, or "route-N" */
    char **methods; /* NULL/0: any method */
    size_t n_methods;
    char *path;   /* exact path, or NULL */
    char *target; /* exact target (path and query) relative to the instance prefix, or NULL */
    int kind;     /* 0: any request; 1: only actual requests; 2: only CORS preflights */
    struct value_match *body; /* a condition on the body (equals, regex, json), or NULL */
    bool has_path_re;
    struct rx path_re; /* the regex dialect (rx.h) */
    char *path_re_src;
    struct value_match *query;
    size_t n_query;
    struct value_match *headers;
    size_t n_headers;
    struct response *responses; /* n_responses >= 1 */
    size_t n_responses;
    enum after_last after_last;
    struct cors_policy *cors; /* NULL: no CORS headers are added */
    bool tls;                 /* answers only requests that came over TLS (https, wss) */
};

struct scenario {
    char *file; /* the path it was loaded from (or the name given to scenario_load_text) */
    char *dir;  /* its folder: body_file is resolved here and may not leave it */
    char *id, *title, *spec, *description;
    char **tags;
    size_t n_tags;
    struct route *routes;
    size_t n_routes;
    struct channel *channels;
    size_t n_channels;
    bool tls;              /* tls: true: main, cross and alt are the https twins */
    enum origin_site site; /* site: the host names of the origins (origins.h) */
    json_t *client;        /* validated `client` part as JSON, or NULL */
    json_t *expect;        /* validated `expect` part as JSON, or NULL */
    json_t *doc;           /* the whole file as JSON (identity + client + expect + server) plus
                            * "file": the path; durations as milliseconds (NULL when
                            * loaded by scenario_load_lean) */
};

#endif
