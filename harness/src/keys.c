/* keys — see keys.h. The tables follow docs/scenarios.md section by section. */
#include "keys.h"

#include <stdio.h>
#include <string.h>
#include "origins.h"

#define N(a) (sizeof a / sizeof a[0])
#define TABLE(var, id, what, doc) const struct key_table var = {id, what, doc, var##_K, N(var##_K)}

/* shorthands for a key_spec */
#define K(key, type, doc)                                                                          \
    {                                                                                              \
        key, type, NULL, NULL, doc, 0, KT_ANY, 0, 0, NULL                                          \
    }
#define KI(key, lo, hi, doc)                                                                       \
    {                                                                                              \
        key, KT_INT, NULL, NULL, doc, 0, KT_ANY, lo, hi, NULL                                      \
    }
#define KE(key, values, doc)                                                                       \
    {                                                                                              \
        key, KT_ENUM, NULL, values, doc, 0, KT_ANY, 0, 0, NULL                                     \
    }
#define KM(key, table, doc)                                                                        \
    {                                                                                              \
        key, KT_MAP, &table, NULL, doc, 0, KT_ANY, 0, 0, NULL                                      \
    }
#define KL(key, table, doc)                                                                        \
    {                                                                                              \
        key, KT_LIST, &table, NULL, doc, 0, KT_ANY, 0, 0, NULL                                     \
    }
#define KLI(key, item, doc)                                                                        \
    {                                                                                              \
        key, KT_LIST, NULL, NULL, doc, 0, item, 0, 0, NULL                                         \
    }
/* with other forms */
#define KF(key, type, forms, doc)                                                                  \
    {                                                                                              \
        key, type, NULL, NULL, doc, forms, KT_ANY, 0, 0, NULL                                      \
    }
#define KMF(key, table, forms, doc)                                                                \
    {                                                                                              \
        key, KT_MAP, &table, NULL, doc, forms, KT_ANY, 0, 0, NULL                                  \
    }

static const char *const AFTER_LAST[] = {"repeat", "cycle", "not_found", NULL};
static const char *const PRESETS[] = {"gif", "png", NULL};
static const char *const TRANSFERS[] = {"length", "chunked", NULL};
static const char *const FAULTS[] = {"close", "reset", "hang", NULL};
static const char *const THENS[] = {"close", "hang", "reset", NULL};
static const char *const LP_FORMATS[] = {"json", "text", NULL};
static const char *const LINE_ENDINGS[] = {"lf", "cr", "crlf", "mixed", NULL};
static const char *const ACCEPTS[] = {"correct", "wrong",     "omit", "case_flipped",
                                      "padded",  "duplicate", NULL};
static const char *const CONN_ENDS[] = {"fin", "rst", "hang", NULL};
static const char *const REQUEST_KINDS[] = {"actual", "preflight", NULL};
static const char *const PREFLIGHTS[] = {"auto", "none", NULL};
static const char *const REDIRECTS[] = {"follow", "manual", "error", NULL};
static const char *const EVENTS_MODES[] = {"exact", "subsequence", "contains", NULL};

/* ------------------------------------------------------------------ the file */

extern const struct key_table KEYS_CLIENT_XHR, KEYS_CLIENT_FETCH, KEYS_CLIENT_EVENTSOURCE,
    KEYS_CLIENT_WEBSOCKET, KEYS_CLIENT_JSONP, KEYS_CLIENT_IMAGE, KEYS_CLIENT_HTTP;
extern const struct key_table KEYS_CLIENT_STEP, KEYS_CLIENT_DO, KEYS_CLIENT_ON,
    KEYS_CLIENT_WAIT_FOR, KEYS_CLIENT_WAIT_JOURNAL, KEYS_WSC_CLOSE;

static const struct key_spec KEYS_SCENARIO_K[] = {
    K("id", KT_STRING, "unique dotted name, area first: xhr.timeout.basic"),
    K("title", KT_TEXT, "one line: what the scenario checks"),
    K("spec", KT_STRING, "the URL of the spec section it checks"),
    KLI("tags", KT_STRING, "extra pytest markers"),
    K("description", KT_TEXT, "longer notes"),
    K("tls", KT_BOOL, "true: the client uses the https twins (main, cross, alt are https)"),
    KE("site", ORIGIN_SITE_NAMES, "the origins' host names: same (one site) or cross (two)"),
    KM("server", KEYS_SERVER, "what the mock server does"),
    KM("client", KEYS_CLIENT, "what the client under test is asked to do: one action"),
    KMF("expect", KEYS_EXPECT, KF_NULL, "what a conforming client shows, and the server saw"),
};
TABLE(KEYS_SCENARIO, "scenario", "the scenario", "a scenario file");

/* ------------------------------------------------------------------ server */

static const struct key_spec KEYS_SERVER_K[] = {
    KL("routes", KEYS_ROUTE, "tried in order; the first whose match holds answers"),
    {"channels", KT_MAP_OF, &KEYS_CHANNEL, NULL, "named event channels for long polls", KF_NULL,
     KT_ANY, 0, 0, NULL},
};
TABLE(KEYS_SERVER, "server", "server", "the mock server's part");

static const struct key_spec KEYS_ROUTE_K[] = {
    K("name", KT_TEXT, "unique in the scenario; default route-N; the journal names it"),
    KM("match", KEYS_MATCH, "what requests the route answers"),
    KM("response", KEYS_RESPONSE, "one response for every match"),
    KL("responses", KEYS_RESPONSE, "a sequence: the nth match gets the nth response"),
    KE("after_last", AFTER_LAST, "after the sequence: repeat the last, cycle, or 404"),
    KM("cors", KEYS_CORS, "the route's CORS policy"),
    K("tls", KT_BOOL, "true: only requests that came over TLS (https, wss) match"),
};
TABLE(KEYS_ROUTE, "route", "a route", "one route of server.routes");

static const struct key_spec KEYS_MATCH_K[] = {
    {"method", KT_STRING, NULL, NULL, "a method or a list; default any", KF_LIST, KT_STRING, 0, 0,
     NULL},
    K("path", KT_TEXT, "exact path, relative to the instance prefix"),
    K("path_regex", KT_REGEX, "a pattern searched in the path (instead of path)"),
    K("target", KT_TEXT, "exact target (path?query as received), relative to the prefix"),
    KE("kind", REQUEST_KINDS, "actual: not CORS preflights; preflight: only them"),
    {"body", KT_MAP, &KEYS_CONDITION, NULL, "a condition on the body: text, regex or json",
     KF_SCALAR, KT_TEXT, 0, 0, NULL},
    {"query", KT_MATCHES, &KEYS_CONDITION, NULL, "conditions on query parameters", 0, KT_ANY, 0, 0,
     NULL},
    {"headers", KT_MATCHES, &KEYS_CONDITION, NULL, "conditions on request headers", 0, KT_ANY, 0, 0,
     NULL},
};
TABLE(KEYS_MATCH, "match", "match", "a route's conditions");

static const struct key_spec KEYS_CONDITION_K[] = {
    K("equals", KT_TEXT, "the value is exactly this"),
    K("regex", KT_REGEX, "the pattern is found in the value"),
    K("present", KT_BOOL, "present: true: the value is there"),
    K("absent", KT_BOOL, "absent: true: the value is not there"),
    K("json", KT_ANY, "match.body only: JSON containing this subset"),
};
TABLE(KEYS_CONDITION, "condition", "a match condition",
      "one of equals, regex, present, absent (json: body only)");

static const struct key_spec KEYS_RESPONSE_K[] = {
    KI("status", 100, 999, "the status code; default 200"),
    K("reason", KT_TEXT, "the reason phrase; default the standard one"),
    K("headers", KT_HEADERS, "in this order, duplicates allowed, templates expanded"),
    K("body", KT_TEMPLATE, "a text body with placeholders"),
    K("body_base64", KT_BASE64, "a body as exact bytes"),
    K("body_file", KT_TEXT, "a body from a file beside the scenario"),
    KE("preset", PRESETS, "the body of a 1x1 image and its Content-Type"),
    K("delay", KT_DURATION, "before the status line"),
    K("body_delay", KT_DURATION, "after the headers, before the first body byte"),
    KM("trickle", KEYS_TRICKLE, "the body a few bytes at a time"),
    KE("transfer", TRANSFERS, "Content-Length (length) or chunked"),
    {"fault", KT_ENUM, &KEYS_FAULT, FAULTS, "end the response badly", KF_MAP, KT_ANY, 0, 0, NULL},
    K("raw", KT_TEMPLATE, "the whole response as text, exact"),
    K("raw_base64", KT_BASE64, "the whole response as exact bytes"),
    {"chunks", KT_LIST, &KEYS_CHUNK, NULL, "the whole response as exact bytes, one write per chunk",
     KF_SCALAR, KT_TEXT, 0, 0, NULL},
    KE("end", CONN_ENDS, "after the whole response: fin, rst (TCP reset) or hang"),
    KM("require", KEYS_REQUIRE, "conditions the journal records as met or not"),
    KM("jsonp", KEYS_JSONP, "a JSONP response: CALLBACK(DATA);"),
    KM("long_poll", KEYS_LONG_POLL, "held until a channel has an event"),
    {"stream", KT_LIST, &KEYS_STREAM_ITEM, NULL, "HTTP streaming: one chunk per item", KF_SCALAR,
     KT_TEMPLATE, 0, 0, NULL},
    KE("then", THENS, "after the last stream chunk"),
    KM("sse", KEYS_SSE, "a Server-Sent Events stream"),
    KMF("websocket", KEYS_WEBSOCKET, KF_NULL, "upgrade to a WebSocket and run a script"),
};
TABLE(KEYS_RESPONSE, "response", "a response", "one response");

static const struct key_spec KEYS_CHUNK_K[] = {
    K("bytes", KT_TEXT, "the chunk as text (its UTF-8 bytes)"),
    K("hex", KT_TEXT, "the chunk as hex digits (spaces allowed between bytes)"),
    K("base64", KT_BASE64, "the chunk as base64"),
    K("pause", KT_DURATION, "before this chunk, after the previous one"),
};
TABLE(KEYS_CHUNK, "chunk", "a chunk", "bytes written with one write, after a pause");

static const struct key_spec KEYS_TRICKLE_K[] = {
    KI("bytes", 1, 1LL << 30, "bytes per piece"),
    K("every", KT_DURATION, "between pieces"),
};
TABLE(KEYS_TRICKLE, "trickle", "trickle", "a response body's schedule");

static const struct key_spec KEYS_FAULT_K[] = {
    KE("action", FAULTS, "close (FIN), reset (RST) or hang"),
    KI("after_bytes", 0, 1LL << 40, "after the headers and this many body bytes"),
};
TABLE(KEYS_FAULT, "fault", "fault", "how a response ends badly");

static const struct key_spec KEYS_REQUIRE_K[] = {
    {"headers", KT_MATCHES, &KEYS_CONDITION, NULL, "conditions on request headers", 0, KT_ANY, 0, 0,
     NULL},
};
TABLE(KEYS_REQUIRE, "require", "require", "conditions the request should meet");

static const struct key_spec KEYS_JSONP_K[] = {
    K("param", KT_STRING, "the query parameter naming the callback; default callback"),
    K("data", KT_ANY, "the argument, any YAML value sent as JSON"),
    K("data_json", KT_TEXT, "the argument as JSON text, as written"),
    K("throw", KT_TEXT, "the body throws an Error with this message instead"),
};
TABLE(KEYS_JSONP, "jsonp", "jsonp", "a JSONP response");

static const struct key_spec KEYS_LONG_POLL_K[] = {
    K("channel", KT_STRING, "a name from server.channels"),
    K("cursor_param", KT_STRING, "the query parameter with the index of the next event wanted"),
    K("hold_timeout", KT_DURATION, "answer on_timeout after this; default 30 s"),
    KM("on_timeout", KEYS_RESPONSE, "the answer when nothing came; default 204"),
    KE("format", LP_FORMATS, "json (default) or the first event's data as text"),
};
TABLE(KEYS_LONG_POLL, "long_poll", "long_poll", "a held request");

static const struct key_spec KEYS_STREAM_ITEM_K[] = {
    K("after", KT_DURATION, "after the previous chunk"),
    K("data", KT_TEMPLATE, "the chunk as text"),
    K("data_base64", KT_BASE64, "the chunk as exact bytes"),
};
TABLE(KEYS_STREAM_ITEM, "stream.item", "a stream item", "one chunk of a stream");

static const struct key_spec KEYS_SSE_K[] = {
    KE("line_ending", LINE_ENDINGS, "lf (default), cr, crlf, or mixed"),
    K("bom", KT_BOOL, "a UTF-8 BOM first"),
    K("data_space", KT_BOOL, "\"data: x\" (default) or \"data:x\""),
    K("final_blank_line", KT_BOOL, "false: the last event is not terminated"),
    KF("content_type", KT_TEXT, KF_NULL, "default text/event-stream; \"\" or null: none"),
    KL("events", KEYS_SSE_EVENT, "the events, in order"),
    KE("then", THENS, "after the last event"),
};
TABLE(KEYS_SSE, "sse", "sse", "a Server-Sent Events stream");

static const struct key_spec KEYS_SSE_EVENT_K[] = {
    K("data", KT_TEXT, "data: lines (split on LF)"),
    KI("data_size", 0, 64LL * 1024 * 1024, "a data line of this many 'x'"),
    K("id", KT_TEXT, "the id: field"),
    K("event", KT_TEXT, "the event: field"),
    K("retry", KT_TEXT, "the retry: field, as written"),
    K("comment", KT_TEXT, "a comment line"),
    K("after", KT_DURATION, "after the previous event"),
    K("blank_line", KT_BOOL, "false: the event is not terminated"),
    KLI("lines", KT_TEXT, "lines written as is, each followed by the line ending"),
    K("raw", KT_TEXT, "exact text, nothing added"),
    K("raw_base64", KT_BASE64, "exact bytes, nothing added"),
};
TABLE(KEYS_SSE_EVENT, "sse.event", "an sse event", "one item of sse.events");

static const struct key_spec KEYS_WEBSOCKET_K[] = {
    KM("handshake", KEYS_HANDSHAKE, "the handshake response"),
    KL("script", KEYS_WS_STEP, "what the server does on the connection, in order"),
    K("linger", KT_DURATION, "after the script: wait this long for the client to close"),
    KE("end", CONN_ENDS, "how the TCP connection ends after the session; default fin"),
};
TABLE(KEYS_WEBSOCKET, "websocket", "websocket", "a WebSocket session");

static const struct key_spec KEYS_HANDSHAKE_K[] = {
    KI("status", 100, 999, "101 (default), or another status: not upgraded"),
    KF("subprotocol", KT_TEXT, KF_NULL, "first_offered (default), none, or a name"),
    K("extensions", KT_TEXT, "a Sec-WebSocket-Extensions value to send"),
    KE("accept", ACCEPTS, "the Sec-WebSocket-Accept: correct, wrong, omit or a variant"),
    K("connection", KT_TEXT, "the Connection value of a 101; default Upgrade"),
    KF("upgrade_header", KT_BOOL, KF_SCALAR, "false: no Upgrade header; a string: that value"),
    K("headers", KT_HEADERS, "extra headers"),
};
TABLE(KEYS_HANDSHAKE, "websocket.handshake", "websocket.handshake", "the handshake response");

static const struct key_spec KEYS_WS_STEP_K[] = {
    KMF("send", KEYS_WS_SEND, KF_SCALAR, "a message (text as a scalar)"),
    KMF("ping", KEYS_WS_PING, KF_SCALAR | KF_NULL, "a ping with a payload"),
    KMF("pong", KEYS_WS_PING, KF_SCALAR | KF_NULL, "an unsolicited pong"),
    K("wait", KT_DURATION, "pause"),
    KMF("receive", KEYS_WS_RECEIVE, KF_SCALAR | KF_NULL, "wait for a message (a timeout)"),
    KMF("echo", KEYS_WS_ECHO, KF_SCALAR | KF_NULL, "echo messages back"),
    KM("frame", KEYS_WS_FRAME, "one frame exactly as described"),
    KMF("close", KEYS_WS_CLOSE, KF_INT | KF_NULL, "a close frame (a code), then wait"),
    {"drop", KT_ENUM, NULL, CONN_ENDS, "end the TCP connection without a close frame", KF_BOOL,
     KT_ANY, 0, 0, NULL},
    {"raw", KT_LIST, &KEYS_CHUNK, NULL, "exact bytes, one write per chunk", KF_SCALAR, KT_TEXT, 0,
     0, NULL},
};
TABLE(KEYS_WS_STEP, "websocket.step", "a websocket step", "one step of a script (one key)");

static const struct key_spec KEYS_WS_SEND_K[] = {
    K("text", KT_TEXT, "a text message"),
    K("binary", KT_TEXT, "a binary message of these bytes"),
    K("binary_base64", KT_BASE64, "a binary message"),
    KI("fragments", 1, 100000, "in this many frames"),
};
TABLE(KEYS_WS_SEND, "websocket.send", "send", "a message");

static const struct key_spec KEYS_WS_PING_K[] = {
    K("payload", KT_TEXT, "the payload"),
    K("payload_base64", KT_BASE64, "the payload as bytes"),
};
TABLE(KEYS_WS_PING, "websocket.ping", "ping", "a ping or pong");

static const struct key_spec KEYS_WS_RECEIVE_K[] = {
    K("timeout", KT_DURATION, "default 5 s"),
};
TABLE(KEYS_WS_RECEIVE, "websocket.receive", "receive", "wait for one message");

static const struct key_spec KEYS_WS_ECHO_K[] = {
    K("timeout", KT_DURATION, "for each message; default 5 s"),
    KI("count", 0, 1000000, "how many; 0: until the client closes"),
};
TABLE(KEYS_WS_ECHO, "websocket.echo", "echo", "echo messages back");

static const struct key_spec KEYS_WS_FRAME_K[] = {
    KI("opcode", 0, 15, "the opcode"),
    K("fin", KT_BOOL, "default true"),
    K("rsv1", KT_BOOL, "reserved bit 1"),
    K("rsv2", KT_BOOL, "reserved bit 2"),
    K("rsv3", KT_BOOL, "reserved bit 3"),
    K("masked", KT_BOOL, "mask the payload (a server must not)"),
    K("payload", KT_TEXT, "the payload"),
    K("payload_base64", KT_BASE64, "the payload as bytes"),
    KI("length_form", 0, 64, "7, 16 or 64: that length encoding; default the shortest"),
    K("length", KT_TEXT, "the length the header announces (0..2^64-1, 0x.. too)"),
    KLI("split_at", KT_INT, "offsets where the frame's bytes are cut into writes"),
    K("pause", KT_DURATION, "before each piece after the first"),
};
TABLE(KEYS_WS_FRAME, "websocket.frame", "frame", "one frame, malformed on purpose");

static const struct key_spec KEYS_WS_CLOSE_K[] = {
    KI("code", 0, 65535, "the status code"),
    K("reason", KT_TEXT, "the reason"),
    K("reason_base64", KT_BASE64, "the reason as bytes"),
    K("timeout", KT_DURATION, "wait for the client's close frame; default 5 s"),
    K("continue", KT_BOOL, "true: go on with the script without waiting"),
};
TABLE(KEYS_WS_CLOSE, "websocket.close", "close", "a close frame");

static const struct key_spec KEYS_CORS_K[] = {
    KF("allow_origin", KT_TEXT, KF_NULL, "echo (default), *, none, wrong, or an exact origin"),
    KF("allow_credentials", KT_TEXT, KF_BOOL, "true, or a wrong value as written"),
    KF("allow_methods", KT_TEXT, KF_LIST, "a string or a list; on preflights"),
    KF("allow_headers", KT_TEXT, KF_LIST, "a string or a list; on preflights"),
    KF("expose_headers", KT_TEXT, KF_LIST, "a string or a list; on actual responses"),
    KI("max_age", -1, 1LL << 31, "Access-Control-Max-Age on preflights"),
    K("vary_origin", KT_BOOL, "Vary: Origin (default true)"),
    {"preflight", KT_ENUM, &KEYS_RESPONSE, PREFLIGHTS, "auto, none, or a response", KF_MAP, KT_ANY,
     0, 0, NULL},
};
TABLE(KEYS_CORS, "cors", "cors", "a route's CORS policy");

static const struct key_spec KEYS_CHANNEL_K[] = {
    {"events", KT_LIST, &KEYS_CHANNEL_EVENT, NULL, "scheduled events (a scalar: its data)",
     KF_SCALAR, KT_TEXT, 0, 0, NULL},
};
TABLE(KEYS_CHANNEL, "channel", "a channel", "a channel of events");

static const struct key_spec KEYS_CHANNEL_EVENT_K[] = {
    K("after", KT_DURATION, "after the instance was loaded"),
    K("data", KT_ANY, "text, or any YAML value sent as JSON"),
};
TABLE(KEYS_CHANNEL_EVENT, "channel.event", "a channel event", "one scheduled event");

/* ------------------------------------------------------------------ client */

#define COMMON                                                                                     \
    K("url", KT_TEMPLATE, "relative to the instance prefix on origin, or absolute"),               \
        KE("origin", ORIGIN_NAMES,                                                                 \
           "the origin of a relative URL: main (default), cross, alt, main_tls, cert_expired..."), \
        K("deadline", KT_DURATION, "the adapter gives up after this; default 10 s")
#define BODY                                                                                       \
    K("body", KT_TEXT, "the request body as text"),                                                \
        {"form", KT_MAP_OF, NULL, NULL, "FormData fields: NAME: value", 0, KT_ANY, 0, 0, NULL},    \
        K("body_base64", KT_BASE64, "the request body as bytes")

static const struct key_spec KEYS_CLIENT_K[] = {
    KM("xhr", KEYS_CLIENT_XHR, "XMLHttpRequest"),
    KM("fetch", KEYS_CLIENT_FETCH, "fetch() in a page"),
    KM("eventsource", KEYS_CLIENT_EVENTSOURCE, "EventSource"),
    KM("websocket", KEYS_CLIENT_WEBSOCKET, "WebSocket"),
    KM("jsonp", KEYS_CLIENT_JSONP, "a script element calling back"),
    KM("image", KEYS_CLIENT_IMAGE, "an image element (a ping)"),
    KM("http", KEYS_CLIENT_HTTP, "a plain HTTP library's request"),
    KL("steps", KEYS_CLIENT_STEP, "a client script: steps run in order by one page or process"),
    K("deadline", KT_DURATION, "with steps: the adapter gives up after this; default 10 s"),
};
TABLE(KEYS_CLIENT, "client", "client", "exactly one action key, or steps");

/* Client scripts (docs/scenarios.md, "Client scripts"). */
static const char *const STEP_VERBS[] = {"abort", "close", "send", NULL};

static const struct key_spec KEYS_CLIENT_STEP_K[] = {
    K("id", KT_STRING, "names the step (default step-N, N from 1); its events carry it"),
    KM("xhr", KEYS_CLIENT_XHR, "start an XMLHttpRequest (send() is called; the script goes on)"),
    KM("fetch", KEYS_CLIENT_FETCH, "start a fetch()"),
    KM("eventsource", KEYS_CLIENT_EVENTSOURCE, "open an EventSource"),
    KM("websocket", KEYS_CLIENT_WEBSOCKET, "open a WebSocket"),
    KM("jsonp", KEYS_CLIENT_JSONP, "append a script element"),
    KM("image", KEYS_CLIENT_IMAGE, "load an image"),
    KM("http", KEYS_CLIENT_HTTP, "start a plain HTTP library's request"),
    K("wait", KT_DURATION, "pause the script"),
    KM("wait_for", KEYS_CLIENT_WAIT_FOR, "pause until an event of a step, or journal entries"),
    {"do", KT_ENUM, &KEYS_CLIENT_DO, STEP_VERBS, "an action on a step's object: abort, close, send",
     KF_MAP, KT_ANY, 0, 0, NULL},
    K("step", KT_STRING, "with do: the step whose object it acts on (default on.step)"),
    KM("on", KEYS_CLIENT_ON, "with do: run it inside the listener of an event of a step"),
};
TABLE(KEYS_CLIENT_STEP, "client.step", "a step",
      "one step of a client script: a request, wait, wait_for or do");

static const struct key_spec KEYS_CLIENT_DO_K[] = {
    K("call", KT_STRING, "call this method of the object (args: its arguments)"),
    KLI("args", KT_ANY, "with call: the arguments"),
    K("set", KT_STRING, "set this property of the object (value: what to)"),
    K("value", KT_ANY, "with set: the value (durations in ms as numbers)"),
    K("send", KT_ANY, "send this (a WebSocket message, an XHR body)"),
    KM("close", KEYS_WSC_CLOSE, "close(code, reason)"),
};
TABLE(KEYS_CLIENT_DO, "client.step.do", "do", "what a do step does, beyond abort/close/send");

static const struct key_spec KEYS_CLIENT_ON_K[] = {
    K("step", KT_STRING, "the step whose object fires the event"),
    K("event", KT_STRING, "the event type (as the step's events are named)"),
    KI("readyState", 0, 4, "only when the object's readyState is this"),
    KI("nth", 1, 1000000, "the nth such event (default the first)"),
};
TABLE(KEYS_CLIENT_ON, "client.step.on", "on", "the event a do step is bound to");

static const struct key_spec KEYS_CLIENT_WAIT_FOR_K[] = {
    KM("event", KEYS_CLIENT_ON, "until a step's object fired this event"),
    KM("journal", KEYS_CLIENT_WAIT_JOURNAL, "until the journal holds this many entries"),
    K("timeout", KT_DURATION, "give up after this (an event wait-timeout); default: the deadline"),
};
TABLE(KEYS_CLIENT_WAIT_FOR, "client.step.wait_for", "wait_for",
      "what a wait_for step waits for: one of event, journal");

static const struct key_spec KEYS_CLIENT_WAIT_JOURNAL_K[] = {
    KF("route", KT_TEXT, KF_NULL, "entries of this route (default: any)"),
    KI("count", 1, 1000000, "this many entries"),
};
TABLE(KEYS_CLIENT_WAIT_JOURNAL, "client.step.wait_for.journal", "wait_for.journal",
      "journal entries to wait for");

static const struct key_spec KEYS_ABORT_K[] = {
    K("on", KT_STRING, "abort() on this event"),
    KI("ready_state", 0, 4, "... when readyState is this"),
    K("after", KT_DURATION, "abort() this long after send()"),
};
TABLE(KEYS_ABORT, "client.abort", "abort", "when the client aborts");

static const struct key_spec KEYS_XHR_K[] = {
    COMMON,
    K("method", KT_STRING, "default GET"),
    K("async", KT_BOOL, "default true"),
    K("timeout", KT_DURATION, "xhr.timeout"),
    K("with_credentials", KT_BOOL, "xhr.withCredentials"),
    K("headers", KT_HEADERS, "setRequestHeader, in order"),
    BODY,
    K("response_type", KT_TEXT, "xhr.responseType"),
    K("override_mime_type", KT_TEXT, "overrideMimeType()"),
    K("upload_progress", KT_BOOL, "listen to xhr.upload events too"),
    KM("abort", KEYS_ABORT, "abort() on an event or after a time"),
    KLI("get_headers", KT_TEXT, "getResponseHeader(NAME) for each, at the end"),
    K("send", KT_BOOL, "false: open() only (a script's do step may send() later)"),
};
const struct key_table KEYS_CLIENT_XHR = {"client.xhr", "client.xhr", "an XMLHttpRequest",
                                          KEYS_XHR_K, N(KEYS_XHR_K)};

static const struct key_spec KEYS_FETCH_K[] = {
    COMMON,
    K("method", KT_STRING, "default GET"),
    K("headers", KT_HEADERS, "request headers, in order"),
    BODY,
    K("mode", KT_TEXT, "RequestInit.mode"),
    K("credentials", KT_TEXT, "RequestInit.credentials"),
    KE("redirect", REDIRECTS, "RequestInit.redirect"),
    K("cache", KT_TEXT, "RequestInit.cache"),
    K("referrer_policy", KT_TEXT, "RequestInit.referrerPolicy"),
    KM("abort", KEYS_ABORT, "abort (an AbortController) after a time or on an event"),
};
const struct key_table KEYS_CLIENT_FETCH = {"client.fetch", "client.fetch", "a fetch()",
                                            KEYS_FETCH_K, N(KEYS_FETCH_K)};

static const struct key_spec KEYS_CLOSE_AFTER_K[] = {
    KI("messages", 0, 1000000, "close() once this many messages arrived"),
    KI("events", 0, 1000000, "close() once this many events were observed"),
    K("ms", KT_DURATION, "close() this long after construction"),
};
TABLE(KEYS_CLOSE_AFTER, "client.close_after", "close_after", "when an EventSource is closed");

static const struct key_spec KEYS_ES_K[] = {
    COMMON,
    K("with_credentials", KT_BOOL, "withCredentials"),
    KLI("event_types", KT_STRING, "listen to these event types too"),
    KM("close_after", KEYS_CLOSE_AFTER, "one of messages, events or ms"),
};
const struct key_table KEYS_CLIENT_EVENTSOURCE = {"client.eventsource", "client.eventsource",
                                                  "an EventSource", KEYS_ES_K, N(KEYS_ES_K)};

static const struct key_spec KEYS_WSC_SEND_K[] = {
    K("wait", KT_DURATION, "pause first"),
    KI("wait_messages", 0, 1000000, "wait until this many messages arrived"),
    K("text", KT_TEXT, "send a text message"),
    K("binary_base64", KT_BASE64, "send a binary message"),
    K("binary", KT_TEXT, "send a binary message of these bytes"),
    K("close", KT_ANY, "close() here"),
};
TABLE(KEYS_WSC_SEND, "client.websocket.send", "a send step", "one step of what the client sends");

static const struct key_spec KEYS_WSC_CLOSE_K[] = {
    KI("code", 0, 65535, "close(code, ...)"),
    K("reason", KT_TEXT, "close(..., reason)"),
};
TABLE(KEYS_WSC_CLOSE, "client.websocket.close", "close", "how the client closes");

static const struct key_spec KEYS_WSC_K[] = {
    COMMON,
    KF("protocols", KT_TEXT, KF_LIST, "offered subprotocols"),
    K("binary_type", KT_TEXT, "binaryType"),
    {"send", KT_LIST, &KEYS_WSC_SEND, NULL, "what to send, in order (a scalar: a text message)",
     KF_SCALAR, KT_TEXT, 0, 0, NULL},
    KMF("close", KEYS_WSC_CLOSE, KF_BOOL, "close() after the send steps"),
};
const struct key_table KEYS_CLIENT_WEBSOCKET = {"client.websocket", "client.websocket",
                                                "a WebSocket", KEYS_WSC_K, N(KEYS_WSC_K)};

static const struct key_spec KEYS_JSONPC_K[] = {
    COMMON,
    K("callback", KT_TEXT, "the callback's name"),
    K("cross_origin", KT_TEXT, "the script element's crossorigin"),
    K("charset", KT_TEXT, "the script element's charset"),
};
const struct key_table KEYS_CLIENT_JSONP = {"client.jsonp", "client.jsonp", "a JSONP request",
                                            KEYS_JSONPC_K, N(KEYS_JSONPC_K)};

static const struct key_spec KEYS_IMAGE_K[] = {
    COMMON,
    K("cross_origin", KT_TEXT, "the image element's crossorigin"),
};
const struct key_table KEYS_CLIENT_IMAGE = {"client.image", "client.image", "an image ping",
                                            KEYS_IMAGE_K, N(KEYS_IMAGE_K)};

static const struct key_spec KEYS_HTTP_K[] = {
    COMMON,
    K("method", KT_STRING, "default GET"),
    K("headers", KT_HEADERS, "request headers, in order"),
    BODY,
    K("timeout", KT_DURATION, "the library's own timeout"),
    K("stream", KT_BOOL, "read the body as it streams: one chunk event per piece"),
    KI("chunk_size", 1, 64LL * 1024 * 1024, "the read size when streaming"),
    KE("redirect", REDIRECTS, "follow (default), manual, error"),
};
const struct key_table KEYS_CLIENT_HTTP = {"client.http", "client.http", "an HTTP request",
                                           KEYS_HTTP_K, N(KEYS_HTTP_K)};

/* ------------------------------------------------------------------ expect */

extern const struct key_table KEYS_ORDER;
extern const struct key_table KEYS_EXPECT_CLIENT_XHR, KEYS_EXPECT_CLIENT_FETCH,
    KEYS_EXPECT_CLIENT_HTTP, KEYS_EXPECT_CLIENT_EVENTSOURCE, KEYS_EXPECT_CLIENT_WEBSOCKET,
    KEYS_EXPECT_CLIENT_JSONP, KEYS_EXPECT_CLIENT_IMAGE, KEYS_EXPECT_CLIENT_STEPS;
extern const struct key_table KEYS_WHEN, KEYS_EXPECT_CASE, KEYS_POINT, KEYS_POINT_JOURNAL,
    KEYS_EXPECT_GAP, KEYS_EXPECT_ALL, KEYS_EXPECT_MONOTONIC;

static const struct key_variant EXPECT_CLIENT_VARIANTS[] = {
    {"xhr", &KEYS_EXPECT_CLIENT_XHR},
    {"fetch", &KEYS_EXPECT_CLIENT_FETCH},
    {"http", &KEYS_EXPECT_CLIENT_HTTP},
    {"eventsource", &KEYS_EXPECT_CLIENT_EVENTSOURCE},
    {"websocket", &KEYS_EXPECT_CLIENT_WEBSOCKET},
    {"jsonp", &KEYS_EXPECT_CLIENT_JSONP},
    {"image", &KEYS_EXPECT_CLIENT_IMAGE},
    {"steps", &KEYS_EXPECT_CLIENT_STEPS},
    {NULL, NULL},
};

static const char *const CLIENT_KINDS[] = {"browser", "library", NULL};
static const char *const LEVELS[] = {"must", "should", "may", NULL};
static const char *const JOURNAL_TIMES[] = {"arrived",   "headers_sent", "body_first_byte",
                                            "body_done", "ended",        NULL};

/* Scoping and strictness, allowed on every check (docs/scenarios.md, "Per-kind
 * expectations"). */
#define SCOPE                                                                                      \
    KM("when", KEYS_WHEN, "only for the clients it names (kind, client, capability, offers)"),     \
        KE("level", LEVELS, "must (default), should (non-strict) or may (informational)")

static const struct key_spec KEYS_WHEN_K[] = {
    KE("kind", CLIENT_KINDS, "browser, or library (every client that is not a browser)"),
    KF("client", KT_TEXT, KF_LIST, "a client name, or a list of them"),
    KF("capability", KT_TEXT, KF_LIST, "clients declaring this capability (all of a list)"),
    K("offers", KT_TEXT, "clients that offered this WebSocket extension (journal)"),
};
TABLE(KEYS_WHEN, "expect.when", "when", "which clients a check is for; all keys must hold");

static const struct key_spec KEYS_EXPECT_K[] = {
    {"client", KT_MAP, NULL, NULL, "graded against the adapter's observations", KF_NULL, KT_ANY, 0,
     0, EXPECT_CLIENT_VARIANTS},
    KMF("server", KEYS_EXPECT_SERVER, KF_NULL, "graded against the server's journal"),
    KL("gaps", KEYS_EXPECT_GAP, "time between two points: events or journal entries"),
    KL("timeline", KEYS_POINT, "points (events, journal entries) in this order on one clock"),
    KL("cases", KEYS_EXPECT_CASE, "blocks of expectations for some clients (when, level)"),
};
TABLE(KEYS_EXPECT, "expect", "expect", "what a conforming client shows");

static const struct key_spec KEYS_EXPECT_CASE_K[] = {
    SCOPE,
    {"client", KT_MAP, NULL, NULL, "as expect.client", KF_NULL, KT_ANY, 0, 0,
     EXPECT_CLIENT_VARIANTS},
    KMF("server", KEYS_EXPECT_SERVER, KF_NULL, "as expect.server"),
    KL("gaps", KEYS_EXPECT_GAP, "as expect.gaps"),
    KL("timeline", KEYS_POINT, "as expect.timeline"),
    K("note", KT_TEXT, "why these clients differ (the spec text)"),
};
TABLE(KEYS_EXPECT_CASE, "expect.case", "a case", "expectations for the clients of when");

static const struct key_spec KEYS_POINT_K[] = {
    K("event", KT_EXPECTED, "an observed event: the fields of an expected event (step too)"),
    KM("journal", KEYS_POINT_JOURNAL, "a journal entry"),
    KI("nth", -1000000, 1000000, "the nth match (1: the first, -1: the last); default 1"),
    KE("at", JOURNAL_TIMES, "journal: which time (default arrived)"),
};
TABLE(KEYS_POINT, "expect.point", "a point", "an event or a journal entry, at its time");

static const struct key_spec KEYS_POINT_JOURNAL_K[] = {
    KF("route", KT_TEXT, KF_NULL, "a route name (null: requests no route matched); default any"),
    KE("kind", REQUEST_KINDS, "only actual requests, or only CORS preflights"),
};
TABLE(KEYS_POINT_JOURNAL, "expect.point.journal", "point.journal", "which journal entries");

static const struct key_spec KEYS_EXPECT_GAP_K[] = {
    KM("from", KEYS_POINT, "the earlier point"),
    KM("to", KEYS_POINT, "the later point"),
    K("at_least", KT_DURATION, "to - from >= this"),
    K("at_most", KT_DURATION, "to - from <= this"),
    K("approx", KT_DURATION, "to - from within tolerance of this"),
    K("tolerance", KT_DURATION, "with approx"),
    K("strict", KT_BOOL, "false: non-strict"),
    SCOPE,
};
TABLE(KEYS_EXPECT_GAP, "expect.gap", "a gap", "the time between two points");

static const struct key_spec KEYS_EXPECT_ALL_K[] = {
    K("events", KT_EXPECTED, "which events: the fields of an expected event"),
    K("match", KT_EXPECTED, "what each of them must have: fields of an expected event"),
    K("count", KT_EXPECTED, "how many such events there are (default at least 1)"),
    K("strict", KT_BOOL, "false: non-strict"),
    SCOPE,
};
TABLE(KEYS_EXPECT_ALL, "expect.client.all", "all", "every selected event matches");

static const struct key_spec KEYS_EXPECT_MONOTONIC_K[] = {
    K("events", KT_EXPECTED, "which events: the fields of an expected event"),
    K("field", KT_STRING, "a numeric field of those events (t for their times)"),
    K("strictly", KT_BOOL, "true: increasing; default never decreasing"),
    K("strict", KT_BOOL, "false: non-strict"),
    SCOPE,
};
TABLE(KEYS_EXPECT_MONOTONIC, "expect.client.monotonic", "monotonic",
      "a field that never decreases over the selected events");

static const struct key_spec KEYS_MATCHER_K[] = {
    K("equals", KT_EXPECTED, "equal to this"),
    K("regex", KT_REGEX, "text in which the pattern is found"),
    KLI("one_of", KT_EXPECTED, "matches one of these"),
    K("absent", KT_BOOL, "absent: true: not observed (or null)"),
    K("present", KT_BOOL, "present: true: observed, not null"),
    K("at_least", KT_NUMBER, "a number >= this"),
    K("at_most", KT_NUMBER, "a number <= this"),
    K("approx", KT_NUMBER, "a number within tolerance of this"),
    K("tolerance", KT_NUMBER, "with approx; default 0"),
    K("json", KT_ANY, "text that parses as JSON containing this subset"),
    K("strict", KT_BOOL, "false: failing it is non-strict (a SHOULD)"),
    SCOPE,
};
TABLE(KEYS_MATCHER, "matcher", "a matcher", "a condition on an observed value; keys combine");

/* The observations (drivers/schema/adapter-protocol.schema.json, observations.*) and event
 * fields (event.*) of each capability: what expect.client may name. */
#define EXPECT_COMMON(events_table)                                                                \
    KL("events", events_table, "the observed events, matched on the fields each item lists"),      \
        KE("events_mode", EVENTS_MODES, "exact (default), subsequence or contains"),               \
        K("deadline", KT_EXPECTED, "the run hit its deadline"),                                    \
        K("exception", KT_EXPECTED, "what the API threw synchronously"),                           \
        K("pageErrors", KT_EXPECTED, "errors the page reported"),                                  \
        K("pageUnresponsive", KT_EXPECTED, "the page stopped answering"),                          \
        K("clock", KT_EXPECTED, "the run's clock: epoch_ms of t = 0"),                             \
        K("unobserved", KT_EXPECTED, "what this client cannot observe"),                           \
        KL("all", KEYS_EXPECT_ALL, "every selected event matches"),                                \
        KL("monotonic", KEYS_EXPECT_MONOTONIC, "a field never decreases over the selected events")
#define EVENT_COMMON                                                                               \
    K("type", KT_EXPECTED, "the event's type"),                                                    \
        K("t", KT_EXPECTED, "milliseconds since the action started (the script's start)"),         \
        K("step", KT_EXPECTED, "a script's events: the id of the step that fired it"),             \
        K("interface", KT_EXPECTED, "the event object's interface (Event, ProgressEvent...)"),     \
        K("bubbles", KT_EXPECTED, "event.bubbles"),                                                \
        K("cancelable", KT_EXPECTED, "event.cancelable"),                                          \
        K("count", KT_EXPECTED, "how many consecutive matching events this item stands for"),      \
        K("strict", KT_BOOL, "false: the item may be missing (non-strict)"), SCOPE
#define EXPECT_TABLES(var, id, doc, events_id)                                                     \
    const struct key_table var##_EVENT = {events_id, "an expected event", doc " event",            \
                                          var##_EVENT_K, N(var##_EVENT_K)};                        \
    const struct key_table var = {id, id, doc, var##_K, N(var##_K)}

static const struct key_spec KEYS_EXPECT_CLIENT_XHR_EVENT_K[] = {
    EVENT_COMMON,
    K("readyState", KT_EXPECTED, "readystatechange: the readyState"),
    K("responseTextLength", KT_EXPECTED, "readystatechange at 3: responseText's length"),
    K("loaded", KT_EXPECTED, "progress events: loaded"),
    K("total", KT_EXPECTED, "progress events: total"),
    K("lengthComputable", KT_EXPECTED, "progress events: lengthComputable"),
};
extern const struct key_table KEYS_EXPECT_CLIENT_XHR_EVENT;
static const struct key_spec KEYS_EXPECT_CLIENT_XHR_K[] = {
    EXPECT_COMMON(KEYS_EXPECT_CLIENT_XHR_EVENT),
    K("status", KT_EXPECTED, "xhr.status"),
    K("statusText", KT_EXPECTED, "xhr.statusText"),
    K("headers", KT_EXPECTED, "response headers (names case-insensitive)"),
    K("allHeaders", KT_EXPECTED, "getAllResponseHeaders()"),
    K("responseURL", KT_EXPECTED, "xhr.responseURL"),
    K("responseText", KT_EXPECTED, "xhr.responseText"),
    K("response", KT_EXPECTED, "xhr.response"),
    K("responseXML", KT_EXPECTED, "xhr.responseXML"),
    K("readyState", KT_EXPECTED, "xhr.readyState at the end"),
    K("initialReadyState", KT_EXPECTED, "xhr.readyState read right after construction"),
    K("getResponseHeader", KT_EXPECTED, "NAME: getResponseHeader(NAME), for get_headers"),
};
EXPECT_TABLES(KEYS_EXPECT_CLIENT_XHR, "expect.client.xhr", "an XMLHttpRequest's",
              "expect.client.xhr.event");

static const struct key_spec KEYS_EXPECT_CLIENT_FETCH_EVENT_K[] = {
    EVENT_COMMON,
    K("status", KT_EXPECTED, "response: the status"),
    K("length", KT_EXPECTED, "chunk: its length"),
    K("text", KT_EXPECTED, "chunk: its text"),
    K("name", KT_EXPECTED, "error: the error's name"),
    K("message", KT_EXPECTED, "error: the error's message"),
};
extern const struct key_table KEYS_EXPECT_CLIENT_FETCH_EVENT;
static const struct key_spec KEYS_EXPECT_CLIENT_FETCH_K[] = {
    EXPECT_COMMON(KEYS_EXPECT_CLIENT_FETCH_EVENT),
    K("status", KT_EXPECTED, "response.status"),
    K("statusText", KT_EXPECTED, "response.statusText"),
    K("headers", KT_EXPECTED, "response headers (names case-insensitive)"),
    K("responseURL", KT_EXPECTED, "response.url"),
    K("responseText", KT_EXPECTED, "the body as text"),
    K("redirected", KT_EXPECTED, "response.redirected"),
    K("type", KT_EXPECTED, "response.type"),
};
EXPECT_TABLES(KEYS_EXPECT_CLIENT_FETCH, "expect.client.fetch", "a fetch()'s",
              "expect.client.fetch.event");

static const struct key_spec KEYS_EXPECT_CLIENT_HTTP_K[] = {
    EXPECT_COMMON(KEYS_EXPECT_CLIENT_FETCH_EVENT),
    K("status", KT_EXPECTED, "the status"),
    K("statusText", KT_EXPECTED, "the reason phrase"),
    K("headers", KT_EXPECTED, "response headers (names case-insensitive)"),
    K("responseURL", KT_EXPECTED, "the final URL"),
    K("responseText", KT_EXPECTED, "the body as text"),
};
const struct key_table KEYS_EXPECT_CLIENT_HTTP = {"expect.client.http", "expect.client.http",
                                                  "an HTTP request's", KEYS_EXPECT_CLIENT_HTTP_K,
                                                  N(KEYS_EXPECT_CLIENT_HTTP_K)};

static const struct key_spec KEYS_EXPECT_CLIENT_EVENTSOURCE_EVENT_K[] = {
    EVENT_COMMON,
    K("readyState", KT_EXPECTED, "open, error: the readyState"),
    K("event", KT_EXPECTED, "message: the event type"),
    K("data", KT_EXPECTED, "message: the data"),
    K("lastEventId", KT_EXPECTED, "message: lastEventId"),
    K("origin", KT_EXPECTED, "message: origin"),
    K("code", KT_EXPECTED, "error: a status code, where the client tells"),
    K("message", KT_EXPECTED, "error: a message, where the client tells"),
};
extern const struct key_table KEYS_EXPECT_CLIENT_EVENTSOURCE_EVENT;
static const struct key_spec KEYS_EXPECT_CLIENT_EVENTSOURCE_K[] = {
    EXPECT_COMMON(KEYS_EXPECT_CLIENT_EVENTSOURCE_EVENT),
    K("readyState", KT_EXPECTED, "readyState at the end"),
    K("url", KT_EXPECTED, "EventSource.url"),
    K("withCredentials", KT_EXPECTED, "EventSource.withCredentials"),
    K("initialReadyState", KT_EXPECTED, "readyState read right after construction"),
};
EXPECT_TABLES(KEYS_EXPECT_CLIENT_EVENTSOURCE, "expect.client.eventsource", "an EventSource's",
              "expect.client.eventsource.event");

static const struct key_spec KEYS_EXPECT_CLIENT_WEBSOCKET_EVENT_K[] = {
    EVENT_COMMON,
    K("protocol", KT_EXPECTED, "open: the subprotocol"),
    K("extensions", KT_EXPECTED, "open: the extensions"),
    K("data", KT_EXPECTED, "message: the text"),
    K("data_base64", KT_EXPECTED, "message: the bytes"),
    K("binary", KT_EXPECTED, "message: binary or not"),
    K("size", KT_EXPECTED, "message: its size"),
    K("code", KT_EXPECTED, "close: the code"),
    K("reason", KT_EXPECTED, "close: the reason"),
    K("wasClean", KT_EXPECTED, "close: wasClean"),
};
extern const struct key_table KEYS_EXPECT_CLIENT_WEBSOCKET_EVENT;
static const struct key_spec KEYS_EXPECT_CLIENT_WEBSOCKET_K[] = {
    EXPECT_COMMON(KEYS_EXPECT_CLIENT_WEBSOCKET_EVENT),
    K("readyState", KT_EXPECTED, "readyState at the end"),
    K("protocol", KT_EXPECTED, "WebSocket.protocol"),
    K("extensions", KT_EXPECTED, "WebSocket.extensions"),
    K("binaryType", KT_EXPECTED, "WebSocket.binaryType"),
    K("url", KT_EXPECTED, "WebSocket.url"),
    K("initialReadyState", KT_EXPECTED, "readyState read right after construction"),
};
EXPECT_TABLES(KEYS_EXPECT_CLIENT_WEBSOCKET, "expect.client.websocket", "a WebSocket's",
              "expect.client.websocket.event");

static const struct key_spec KEYS_EXPECT_CLIENT_JSONP_EVENT_K[] = {
    EVENT_COMMON,
    K("args", KT_EXPECTED, "callback: its arguments"),
};
extern const struct key_table KEYS_EXPECT_CLIENT_JSONP_EVENT;
static const struct key_spec KEYS_EXPECT_CLIENT_JSONP_K[] = {
    EXPECT_COMMON(KEYS_EXPECT_CLIENT_JSONP_EVENT),
};
EXPECT_TABLES(KEYS_EXPECT_CLIENT_JSONP, "expect.client.jsonp", "a JSONP request's",
              "expect.client.jsonp.event");

static const struct key_spec KEYS_EXPECT_CLIENT_IMAGE_EVENT_K[] = {
    EVENT_COMMON,
    K("naturalWidth", KT_EXPECTED, "load: the image's width"),
    K("naturalHeight", KT_EXPECTED, "load: the image's height"),
};
extern const struct key_table KEYS_EXPECT_CLIENT_IMAGE_EVENT;
static const struct key_spec KEYS_EXPECT_CLIENT_IMAGE_K[] = {
    EXPECT_COMMON(KEYS_EXPECT_CLIENT_IMAGE_EVENT),
    K("complete", KT_EXPECTED, "img.complete at the end"),
    K("naturalWidth", KT_EXPECTED, "img.naturalWidth at the end"),
    K("naturalHeight", KT_EXPECTED, "img.naturalHeight at the end"),
};
EXPECT_TABLES(KEYS_EXPECT_CLIENT_IMAGE, "expect.client.image", "an image ping's",
              "expect.client.image.event");

/* A client script's: its events (every step's, each with its step), and per step the
 * observations of that step's action (validated by scenario_expect.c). */
static const struct key_spec KEYS_EXPECT_CLIENT_STEPS_EVENT_K[] = {
    EVENT_COMMON,
    K("readyState", KT_EXPECTED, "the readyState"),
    K("responseTextLength", KT_EXPECTED, "xhr readystatechange at 3"),
    K("loaded", KT_EXPECTED, "xhr progress events"),
    K("total", KT_EXPECTED, "xhr progress events"),
    K("lengthComputable", KT_EXPECTED, "xhr progress events"),
    K("status", KT_EXPECTED, "fetch response: the status"),
    K("length", KT_EXPECTED, "fetch chunk: its length"),
    K("text", KT_EXPECTED, "fetch chunk: its text"),
    K("name", KT_EXPECTED, "error, exception: the error's name"),
    K("message", KT_EXPECTED, "error, exception: the message"),
    K("event", KT_EXPECTED, "eventsource message: the type"),
    K("data", KT_EXPECTED, "message: the data"),
    K("data_base64", KT_EXPECTED, "websocket message: the bytes"),
    K("binary", KT_EXPECTED, "websocket message: binary or not"),
    K("size", KT_EXPECTED, "websocket message: its size"),
    K("lastEventId", KT_EXPECTED, "eventsource message: lastEventId"),
    K("origin", KT_EXPECTED, "eventsource message: origin"),
    K("code", KT_EXPECTED, "close: the code; eventsource error: the status"),
    K("reason", KT_EXPECTED, "close: the reason"),
    K("wasClean", KT_EXPECTED, "close: wasClean"),
    K("protocol", KT_EXPECTED, "websocket open: the subprotocol"),
    K("extensions", KT_EXPECTED, "websocket open: the extensions"),
    K("args", KT_EXPECTED, "jsonp callback: its arguments"),
    K("naturalWidth", KT_EXPECTED, "image load: the width"),
    K("naturalHeight", KT_EXPECTED, "image load: the height"),
    K("target", KT_EXPECTED, "exception, return: the step a do step acted on"),
    K("method", KT_EXPECTED, "return: the method a do step called"),
    K("value", KT_EXPECTED, "return: what it returned"),
};
extern const struct key_table KEYS_EXPECT_CLIENT_STEPS_EVENT;
static const struct key_spec KEYS_EXPECT_CLIENT_STEPS_K[] = {
    EXPECT_COMMON(KEYS_EXPECT_CLIENT_STEPS_EVENT),
    {"steps", KT_MAP_OF, NULL, NULL,
     "STEP-ID: the observations of that step's action (as expect.client of that action)", 0, KT_ANY,
     0, 0, NULL},
};
EXPECT_TABLES(KEYS_EXPECT_CLIENT_STEPS, "expect.client.steps", "a client script's",
              "expect.client.steps.event");

static const struct key_spec KEYS_EXPECT_SERVER_K[] = {
    KL("requests", KEYS_EXPECT_REQUEST, "checks on the journaled requests of a route (or all)"),
    {"preflights", KT_EXPECTED, &KEYS_EXPECT_REQUEST, NULL,
     "the number of CORS preflights, or checks on them", KF_MAP, KT_ANY, 0, 0, NULL},
    {"order", KT_LIST, &KEYS_ORDER, NULL, "route names in arrival order", KF_MAP, KT_TEXT, 0, 0,
     NULL},
    KM("websocket", KEYS_EXPECT_WEBSOCKET, "the client's side of the first WebSocket session"),
    K("strict", KT_BOOL, "false: every check here is non-strict"),
};
TABLE(KEYS_EXPECT_SERVER, "expect.server", "expect.server", "graded against the journal");

static const struct key_spec KEYS_EXPECT_REQUEST_K[] = {
    KF("route", KT_TEXT, KF_NULL, "a route name (null: requests no route matched)"),
    K("count", KT_EXPECTED, "how many requests"),
    K("preflight", KT_BOOL, "true: only CORS preflights"),
    KE("kind", REQUEST_KINDS, "only actual requests, or only CORS preflights"),
    K("strict", KT_BOOL, "false: these checks are non-strict"),
    K("method", KT_EXPECTED, "every selected request's method"),
    K("path", KT_EXPECTED, "... path, relative to the instance prefix"),
    K("target", KT_EXPECTED, "... request target as received"),
    K("query", KT_EXPECTED, "... query string"),
    K("body", KT_EXPECTED, "... body"),
    K("status", KT_EXPECTED, "... status sent"),
    K("tls", KT_EXPECTED, "... came over TLS (true) or not (false)"),
    K("sni", KT_EXPECTED, "... server name the TLS client sent (SNI)"),
    K("request_line", KT_EXPECTED, "... request line as sent: METHOD SP target SP version"),
    K("header_names", KT_EXPECTED, "... header names as sent: their case, in arrival order"),
    KLI("header_order", KT_EXPECTED,
        "the header names as sent begin with these (a name: its case; or a matcher)"),
    {"headers", KT_MAP_OF, NULL, NULL, "... headers: NAME: expected value", 0, KT_EXPECTED, 0, 0,
     NULL},
    SCOPE,
};
TABLE(KEYS_EXPECT_REQUEST, "expect.server.request", "an expected request",
      "checks on journaled requests");

static const struct key_spec KEYS_ORDER_K[] = {
    KLI("routes", KT_TEXT, "route names in arrival order"),
    K("strict", KT_BOOL, "false: non-strict"),
    SCOPE,
};
TABLE(KEYS_ORDER, "expect.server.order", "order", "route names in arrival order");

static const struct key_spec KEYS_EXPECT_WEBSOCKET_K[] = {
    K("pongs", KT_EXPECTED, "the payloads of the pongs the client sent"),
    K("messages", KT_EXPECTED, "the messages it sent"),
    K("close_code", KT_EXPECTED, "the code of its close frame"),
    K("masked", KT_EXPECTED, "it masked every frame"),
    K("violations", KT_EXPECTED, "the RFC 6455 rules it broke, by name"),
    K("end", KT_EXPECTED, "how the session ended"),
    K("strict", KT_BOOL, "false: these checks are non-strict"),
    SCOPE,
};
TABLE(KEYS_EXPECT_WEBSOCKET, "expect.server.websocket", "expect.server.websocket",
      "the client's side of a WebSocket session");

/* ------------------------------------------------------------------ lookups and export */

static const struct key_table *const ALL[] = {
    &KEYS_SCENARIO,
    &KEYS_SERVER,
    &KEYS_ROUTE,
    &KEYS_MATCH,
    &KEYS_CONDITION,
    &KEYS_RESPONSE,
    &KEYS_CHUNK,
    &KEYS_TRICKLE,
    &KEYS_FAULT,
    &KEYS_REQUIRE,
    &KEYS_JSONP,
    &KEYS_LONG_POLL,
    &KEYS_STREAM_ITEM,
    &KEYS_SSE,
    &KEYS_SSE_EVENT,
    &KEYS_WEBSOCKET,
    &KEYS_HANDSHAKE,
    &KEYS_WS_STEP,
    &KEYS_WS_SEND,
    &KEYS_WS_PING,
    &KEYS_WS_RECEIVE,
    &KEYS_WS_ECHO,
    &KEYS_WS_FRAME,
    &KEYS_WS_CLOSE,
    &KEYS_CORS,
    &KEYS_CHANNEL,
    &KEYS_CHANNEL_EVENT,
    &KEYS_CLIENT,
    &KEYS_CLIENT_XHR,
    &KEYS_CLIENT_FETCH,
    &KEYS_CLIENT_EVENTSOURCE,
    &KEYS_CLIENT_WEBSOCKET,
    &KEYS_CLIENT_JSONP,
    &KEYS_CLIENT_IMAGE,
    &KEYS_CLIENT_HTTP,
    &KEYS_ABORT,
    &KEYS_CLOSE_AFTER,
    &KEYS_WSC_SEND,
    &KEYS_WSC_CLOSE,
    &KEYS_CLIENT_STEP,
    &KEYS_CLIENT_DO,
    &KEYS_CLIENT_ON,
    &KEYS_CLIENT_WAIT_FOR,
    &KEYS_CLIENT_WAIT_JOURNAL,
    &KEYS_EXPECT,
    &KEYS_MATCHER,
    &KEYS_EXPECT_CLIENT_XHR,
    &KEYS_EXPECT_CLIENT_XHR_EVENT,
    &KEYS_EXPECT_CLIENT_FETCH,
    &KEYS_EXPECT_CLIENT_FETCH_EVENT,
    &KEYS_EXPECT_CLIENT_HTTP,
    &KEYS_EXPECT_CLIENT_EVENTSOURCE,
    &KEYS_EXPECT_CLIENT_EVENTSOURCE_EVENT,
    &KEYS_EXPECT_CLIENT_WEBSOCKET,
    &KEYS_EXPECT_CLIENT_WEBSOCKET_EVENT,
    &KEYS_EXPECT_CLIENT_JSONP,
    &KEYS_EXPECT_CLIENT_JSONP_EVENT,
    &KEYS_EXPECT_CLIENT_IMAGE,
    &KEYS_EXPECT_CLIENT_IMAGE_EVENT,
    &KEYS_EXPECT_CLIENT_STEPS,
    &KEYS_EXPECT_CLIENT_STEPS_EVENT,
    &KEYS_WHEN,
    &KEYS_EXPECT_CASE,
    &KEYS_POINT,
    &KEYS_POINT_JOURNAL,
    &KEYS_EXPECT_GAP,
    &KEYS_EXPECT_ALL,
    &KEYS_EXPECT_MONOTONIC,
    &KEYS_EXPECT_SERVER,
    &KEYS_EXPECT_REQUEST,
    &KEYS_ORDER,
    &KEYS_EXPECT_WEBSOCKET,
};

const struct key_spec *keys_find(const struct key_table *t, const char *key)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->keys[i].key[0] == key[0] && !strcmp(t->keys[i].key, key))
            return &t->keys[i];
    return NULL;
}

const char *keys_list(const struct key_table *t, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = 0;
    for (size_t i = 0; i < t->n && used + strlen(t->keys[i].key) + 3 < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "", t->keys[i].key);
    return buf;
}

const char *keys_type_name(enum key_type type)
{
    static const char *const names[] = {
        [KT_ANY] = "any",         [KT_EXPECTED] = "expected", [KT_STRING] = "string",
        [KT_TEXT] = "text",       [KT_TEMPLATE] = "template", [KT_INT] = "integer",
        [KT_NUMBER] = "number",   [KT_BOOL] = "boolean",      [KT_DURATION] = "duration",
        [KT_ENUM] = "enum",       [KT_REGEX] = "regex",       [KT_BASE64] = "base64",
        [KT_HEADERS] = "headers", [KT_MATCHES] = "matches",   [KT_MAP] = "map",
        [KT_LIST] = "list",       [KT_MAP_OF] = "map_of",
    };
    return names[type];
}

static json_t *spec_json(const struct key_spec *k)
{
    json_t *o = json_pack("{s:s, s:s}", "type", keys_type_name(k->type), "doc", k->doc);
    if (k->table)
        json_object_set_new(o, "table", json_string(k->table->id));
    if (k->values) {
        json_t *v = json_array();
        for (const char *const *e = k->values; *e; e++)
            json_array_append_new(v, json_string(*e));
        json_object_set_new(o, "values", v);
    }
    if (k->forms) {
        static const char *const names[] = {"null", "boolean", "scalar", "map", "list", "integer"};
        json_t *f = json_array();
        for (int b = 0; b < 6; b++)
            if (k->forms & (1u << b))
                json_array_append_new(f, json_string(names[b]));
        json_object_set_new(o, "forms", f);
    }
    if ((k->type == KT_LIST && !k->table) || (k->forms & KF_LIST) ||
        (k->type == KT_MAP_OF && !k->table) || (k->type == KT_LIST && (k->forms & KF_SCALAR)))
        json_object_set_new(o, "item", json_string(keys_type_name(k->item)));
    if (k->type == KT_INT && (k->min || k->max))
        json_object_set_new(o, "min", json_integer(k->min)),
            json_object_set_new(o, "max", json_integer(k->max));
    if (k->variants) {
        json_t *v = json_object();
        for (const struct key_variant *x = k->variants; x->action; x++)
            json_object_set_new(v, x->action, json_string(x->table->id));
        json_object_set_new(o, "variants", v);
    }
    return o;
}

json_t *keys_to_json(void)
{
    json_t *tables = json_object();
    for (size_t i = 0; i < N(ALL); i++) {
        const struct key_table *t = ALL[i];
        json_t *keys = json_object();
        for (size_t k = 0; k < t->n; k++)
            json_object_set_new(keys, t->keys[k].key, spec_json(&t->keys[k]));
        json_object_set_new(
            tables, t->id,
            json_pack("{s:s, s:s, s:o}", "what", t->what, "doc", t->doc, "keys", keys));
    }
    return json_pack("{s:i, s:s, s:o}", "version", 1, "root", KEYS_SCENARIO.id, "tables", tables);
}
