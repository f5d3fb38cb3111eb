//! Local emulator of the Qflow identity server + API gateway and the Qpien GraphQL endpoint.
//!
//! Test-only (never shipped). Binds 127.0.0.1 on `--port` (0 = any free port) and prints
//! `qauth-emulator listening on http://127.0.0.1:PORT` as its first stdout line.
//! All credentials it knows are distinctive `CANARY-…` values, so tests can search any output
//! for the word `CANARY` to prove no secret leaked.

mod state;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Form, FromRequest, Query, State as AxState};
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use state::{ApiFault, Fault, GqlFault, State, TokenGrant};

type Shared = Arc<Mutex<State>>;

fn json_resp(status: StatusCode, v: Value) -> Response {
    (status, Json(v)).into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_resp(status, json!({ "error": error, "error_description": description }))
}

/// A JSON body of about `size` bytes: `head`, then `fill` repeated, then `tail`, streamed in
/// 64 KiB chunks (one 64 KiB block is allocated and shared), without a Content-Length.
fn streamed(status: StatusCode, size: usize, head: &str, fill: &[u8], tail: &str) -> Response {
    const CHUNK: usize = 64 << 10;
    let middle = size.saturating_sub(head.len() + tail.len());
    let block = Bytes::from(fill.iter().copied().cycle().take(CHUNK).collect::<Vec<u8>>());
    let chunks = std::iter::once(Bytes::from(head.to_string()))
        .chain(std::iter::repeat_n(block.clone(), middle / CHUNK))
        .chain(std::iter::once(block.slice(..middle % CHUNK)))
        .chain(std::iter::once(Bytes::from(tail.to_string())))
        .map(Ok::<Bytes, std::io::Error>);
    Response::builder().status(status).header(header::CONTENT_TYPE, "application/json").body(Body::from_stream(futures_util::stream::iter(chunks))).unwrap()
}

/// A header's value as text (empty when absent).
fn header_text(h: &HeaderMap, name: &str) -> String {
    h.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).unwrap_or_default()
}

/// Applies the next queued fault to a token call (`mint`: the GraphQL generateOAuthToken mint),
/// whose raw body was `raw`. `Some` short-circuits with that answer;
/// `Err(fault)` asks the caller to process the grant and then break the answer.
async fn take_fault(st: &Shared, raw: &[u8], mint: bool) -> Result<Option<Response>, Fault> {
    let fault = st.lock().unwrap().next_fault();
    let Some(f) = fault else { return Ok(None) };
    match f {
        Fault::Status { status, retry_after } => {
            let r = json_resp(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), json!({"error": "temporarily_unavailable"}));
            Ok(Some(with_retry_after(r, retry_after)))
        }
        Fault::Delay { ms } => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(None)
        }
        Fault::Html => Ok(Some((StatusCode::OK, Html("<html><body>Gateway login page</body></html>")).into_response())),
        Fault::Malformed => Ok(Some((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], "{\"access_token\": \"x\", \"token_").into_response())),
        Fault::Echo | Fault::EchoCut => {
            let body = String::from_utf8_lossy(raw);
            let cut = matches!(f, Fault::EchoCut);
            // `echo_cut`: padded so the first credential in the body starts 5 characters before the
            // client's cut (300 for an OAuth description, 500 for a GraphQL message).
            let at = ["refresh_token=", "code=", "password=", "clientSecret\":\"", "client_secret="]
                .iter()
                .find_map(|k| body.find(k).map(|i| i + k.len()))
                .unwrap_or(0);
            let pad = |cut_at: usize| "x".repeat(cut_at.saturating_sub(5 + at));
            Ok(Some(if mint {
                let message = if cut { format!("{}{body}", pad(500)) } else { format!("cannot parse: {body}") };
                json_resp(StatusCode::OK, json!({ "errors": [{ "message": message, "extensions": { "code": "BAD_USER_INPUT" } }] }))
            } else {
                let description = if cut { format!("{}{body}", pad(300)) } else { format!("cannot parse request: {body}") };
                oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &description)
            }))
        }
        Fault::Big { size } => Ok(Some(if mint {
            streamed(StatusCode::OK, size, "{\"data\":{\"generateOAuthToken\":{\"accessToken\":\"", b"a", "\"}}}")
        } else {
            streamed(StatusCode::OK, size, "{\"access_token\":\"", b"a", "\"}")
        })),
        f @ (Fault::Truncated | Fault::Drop | Fault::NoExpiry) => Err(f),
    }
}

/// Turns a good answer into a broken one, as a fault asked.
fn break_answer(fault: Option<Fault>, good: Value) -> Response {
    match fault {
        Some(Fault::Truncated) => {
            let text = good.to_string();
            let half = Bytes::from(text.as_bytes()[..text.len() / 2].to_vec());
            let stream = futures_util::stream::iter(vec![Ok::<Bytes, std::io::Error>(half), Err(std::io::Error::other("cut"))]);
            Response::builder()
                .status(200)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_LENGTH, text.len())
                .body(Body::from_stream(stream))
                .unwrap()
        }
        Some(Fault::Drop) => {
            let stream = futures_util::stream::iter(vec![Err::<Bytes, std::io::Error>(std::io::Error::other("dropped"))]);
            Response::builder().status(200).header(header::CONTENT_LENGTH, 100).body(Body::from_stream(stream)).unwrap()
        }
        _ => json_resp(StatusCode::OK, good),
    }
}

/// The form of a token request, parsed by axum's `Form` (same checks and decoding as the
/// extractor), from a body the caller also keeps raw.
async fn parse_form(headers: &HeaderMap, raw: Bytes) -> Result<Vec<(String, String)>, Response> {
    let mut req = Request::builder().method(Method::POST).body(Body::from(raw)).unwrap();
    *req.headers_mut() = headers.clone();
    Form::<Vec<(String, String)>>::from_request(req, &()).await.map(|Form(f)| f).map_err(IntoResponse::into_response)
}

async fn token(AxState(st): AxState<Shared>, headers: HeaderMap, raw: Bytes) -> Response {
    let form = match parse_form(&headers, raw.clone()).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let grant = get("grant_type").unwrap_or("");
    st.lock().unwrap().count_token(grant);
    let fault = match take_fault(&st, &raw, false).await {
        Ok(Some(r)) => return r,
        Ok(None) => None,
        Err(f) => Some(f),
    };
    if grant == "refresh_token" {
        let delay = st.lock().unwrap().take_refresh_delay();
        if let Some(ms) = delay {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
    // client_secret_post or client_secret_basic.
    let (cid, secret) = match (get("client_id"), get("client_secret")) {
        (Some(c), Some(s)) => (c.to_string(), s.to_string()),
        _ => match state::basic_auth(&headers) {
            Some(pair) => pair,
            None => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication missing"),
        },
    };
    let mut s = st.lock().unwrap();
    if !s.client_ok(&cid, &secret) {
        s.stats.token_errors += 1;
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client or wrong secret");
    }
    let issued = match grant {
        "password" => {
            let scope = get("scope").unwrap_or("");
            if scope.split(' ').any(|x| !["qflowapi", "openid", "offline_access"].contains(&x)) {
                Err(("invalid_scope", "scope not allowed for this client"))
            } else {
                s.password_grant(get("username").unwrap_or(""), get("password").unwrap_or(""))
            }
        }
        "refresh_token" => s.refresh_grant(get("refresh_token").unwrap_or("")),
        "authorization_code" => s.code_grant(&cid, get("code").unwrap_or(""), get("redirect_uri").unwrap_or(""), get("code_verifier").unwrap_or("")),
        _ => Err(("unsupported_grant_type", "grant type not supported")),
    };
    match issued {
        Ok(TokenGrant { access, refresh, ttl }) => {
            let mut body = json!({ "access_token": access, "token_type": "Bearer", "refresh_token": refresh, "scope": "qflowapi openid offline_access" });
            if !matches!(fault, Some(Fault::NoExpiry)) {
                body["expires_in"] = json!(ttl);
            }
            break_answer(fault, body)
        }
        Err((error, desc)) => {
            s.stats.token_errors += 1;
            if error == "invalid_grant" {
                s.stats.token_invalid_grant += 1;
            }
            oauth_error(StatusCode::BAD_REQUEST, error, desc)
        }
    }
}

#[derive(serde::Deserialize)]
struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

async fn authorize_form(AxState(st): AxState<Shared>, Query(q): Query<AuthorizeQuery>) -> Response {
    let s = st.lock().unwrap();
    if q.response_type.as_deref() != Some("code") || !s.client_id_known(q.client_id.as_deref().unwrap_or("")) {
        return (StatusCode::BAD_REQUEST, Html("<h1>Bad authorization request</h1><p>unknown client or response_type</p>")).into_response();
    }
    let redirect = q.redirect_uri.clone().unwrap_or_default();
    if !state::redirect_allowed(&redirect) {
        return (StatusCode::BAD_REQUEST, Html("<h1>Bad authorization request</h1><p>redirect_uri not registered</p>")).into_response();
    }
    if q.code_challenge.as_deref().unwrap_or("").is_empty() || q.code_challenge_method.as_deref() != Some("S256") {
        let sep = if redirect.contains('?') { '&' } else { '?' };
        let url = format!("{redirect}{sep}error=invalid_request&error_description=PKCE+S256+required&state={}", state::enc(q.state.as_deref().unwrap_or("")));
        return Redirect::to(&url).into_response();
    }
    let hidden = |k: &str, v: &Option<String>| format!(r#"<input type="hidden" name="{k}" value="{}">"#, esc(v.as_deref().unwrap_or("")));
    let page = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Qflow sign-in (emulator)</title>
<style>body{{font-family:system-ui,sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem}}label{{display:block;margin:.8rem 0 .2rem}}input[type=text],input[type=password]{{width:100%;padding:.4rem}}button{{margin-top:1rem;margin-right:.5rem;padding:.4rem 1rem}}</style></head>
<body><h1>Sign in to Qflow</h1><p>Local emulator of Qflow's identity server.</p>
<form method="post" action="/core/connect/authorize">{}{}{}{}{}
<label for="username">Username</label><input id="username" name="username" type="text" autocomplete="username">
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password">
<button type="submit" name="action" value="allow" id="allow">Sign in</button><button type="submit" name="action" value="deny" id="deny">Cancel</button>
</form></body></html>"#,
        hidden("client_id", &q.client_id),
        hidden("redirect_uri", &q.redirect_uri),
        hidden("scope", &q.scope),
        hidden("state", &q.state),
        hidden("code_challenge", &q.code_challenge),
    );
    Html(page).into_response()
}

async fn authorize_submit(AxState(st): AxState<Shared>, Form(form): Form<Vec<(String, String)>>) -> Response {
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
    let redirect = get("redirect_uri");
    if !state::redirect_allowed(&redirect) {
        return (StatusCode::BAD_REQUEST, Html("<h1>redirect_uri not registered</h1>")).into_response();
    }
    let sep = if redirect.contains('?') { '&' } else { '?' };
    let st_param = state::enc(&get("state"));
    if get("action") == "deny" {
        return Redirect::to(&format!("{redirect}{sep}error=access_denied&error_description=The+user+declined+to+sign+in&state={st_param}")).into_response();
    }
    let mut s = st.lock().unwrap();
    match s.issue_code(&get("client_id"), &get("username"), &get("password"), &redirect, &get("code_challenge")) {
        Some(code) => Redirect::to(&format!("{redirect}{sep}code={code}&state={st_param}")).into_response(),
        None => {
            (StatusCode::UNAUTHORIZED, Html("<h1>Wrong username or password</h1><p><a href=\"javascript:history.back()\">Try again</a></p>")).into_response()
        }
    }
}

/// The API gateway: everything under /checkin and /comms needs both credentials.
async fn gateway(AxState(st): AxState<Shared>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let mut s = st.lock().unwrap();
    s.stats.api_calls += 1;
    let user = match s.authenticate_api(&parts.headers) {
        Ok(u) => u,
        Err(msg) => return json_resp(StatusCode::UNAUTHORIZED, json!({ "statusCode": 401, "message": msg })),
    };
    match s.next_api_fault() {
        Some(ApiFault::Echo403) => {
            let message = format!(
                "refused request with authorization {} and key {}",
                header_text(&parts.headers, "authorization"),
                header_text(&parts.headers, "ocp-apim-subscription-key")
            );
            return json_resp(StatusCode::FORBIDDEN, json!({ "error": "forbidden", "message": message }));
        }
        Some(ApiFault::Echo403Bearer) => {
            let message = format!("refused {}", header_text(&parts.headers, "authorization"));
            return json_resp(StatusCode::FORBIDDEN, json!({ "error": "forbidden", "message": message }));
        }
        Some(ApiFault::Big403 { size }) => return streamed(StatusCode::FORBIDDEN, size, "{\"error\":\"forbidden\",\"pad\":\"", b"x", "\"}"),
        Some(ApiFault::Status { status, retry_after }) => {
            return with_retry_after(json_resp(StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE), json!({"error": "busy"})), retry_after)
        }
        None => {}
    }
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or("");
    match (&parts.method, path) {
        (&Method::GET, "/comms/v1/api/comms/templates") => {
            let event = state::query_param(query, "eventId").unwrap_or_default();
            if !s.users[user].comms_allowed {
                return json_resp(
                    StatusCode::FORBIDDEN,
                    json!({"error": "comms_api_not_enabled", "message": "Comms API access is not enabled for this account. Contact support."}),
                );
            }
            json_resp(
                StatusCode::OK,
                json!({ "eventId": event, "templates": [{"id": "tpl-welcome", "name": "Welcome"}, {"id": "tpl-reminder", "name": "Reminder"}] }),
            )
        }
        (&Method::POST, "/comms/v1/api/comms/send") => {
            if !s.users[user].verified {
                return json_resp(StatusCode::FORBIDDEN, json!({"error": "trust_required", "message": "Finish account verification before sending."}));
            }
            if !s.users[user].comms_allowed {
                return json_resp(StatusCode::FORBIDDEN, json!({"error": "comms_api_not_enabled"}));
            }
            json_resp(StatusCode::ACCEPTED, json!({"queued": true}))
        }
        (&Method::POST, "/checkin/v1/api/event") => {
            let input: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
            s.stats.events_created += 1;
            let id = format!("evt-{}", s.stats.events_created);
            json_resp(StatusCode::CREATED, json!({ "id": id, "name": input.get("name").cloned().unwrap_or(Value::Null), "createdBy": s.users[user].username }))
        }
        (&Method::GET, "/checkin/v1/api/events") => json_resp(
            StatusCode::OK,
            json!({ "user": s.users[user].username, "userGuid": s.users[user].guid, "events": [{"id": "evt-100", "name": "Spring conference"}, {"id": "evt-101", "name": "Team offsite"}] }),
        ),
        (&Method::GET, "/checkin/v1/api/redirect") => Redirect::temporary("http://127.0.0.2:1/elsewhere").into_response(),
        _ => json_resp(StatusCode::NOT_FOUND, json!({"statusCode": 404, "message": "Resource not found"})),
    }
}

async fn graphql(AxState(st): AxState<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return json_resp(StatusCode::BAD_REQUEST, json!({"errors": [{"message": "body is not JSON"}]})),
    };
    let query = req["query"].as_str().unwrap_or("").to_string();
    if query.contains("generateOAuthToken") {
        st.lock().unwrap().stats.qpien_mints += 1;
        let fault = match take_fault(&st, &body, true).await {
            Ok(Some(r)) => return r,
            Ok(None) => None,
            Err(f) => Some(f),
        };
        let mut s = st.lock().unwrap();
        let id = req["variables"]["clientId"].as_str().unwrap_or("");
        let secret = req["variables"]["clientSecret"].as_str().unwrap_or("");
        return match s.qpien_mint(id, secret) {
            Some((token, ttl)) => {
                let mut minted = json!({ "accessToken": token });
                if !matches!(fault, Some(Fault::NoExpiry)) {
                    minted["expiresIn"] = json!(ttl);
                }
                break_answer(fault, json!({ "data": { "generateOAuthToken": minted } }))
            }
            None => s.gql_error("INVALID_CLIENT", "Client ID or Client Secret is wrong"),
        };
    }
    let mut s = st.lock().unwrap();
    s.stats.qpien_calls += 1;
    let scopes = match s.qpien_authenticate(&headers) {
        Ok(scopes) => scopes,
        Err(code) => return s.gql_error(code, if code == "TOKEN_EXPIRED" { "The token has expired" } else { "Missing or invalid token" }),
    };
    match s.next_gql_fault() {
        Some(f @ (GqlFault::Echo | GqlFault::EchoCut)) => {
            // `echo_cut`: the token starts 5 characters before the client's 500-character cut.
            let pad = if matches!(f, GqlFault::EchoCut) { "x".repeat(500 - 5 - "denied for Bearer ".len()) } else { String::new() };
            let message = format!("{pad}denied for {}", header_text(&headers, "authorization"));
            return json_resp(StatusCode::OK, json!({ "errors": [{ "message": message, "extensions": { "code": "FORBIDDEN" } }] }));
        }
        Some(GqlFault::Big { size }) => {
            // "1,1,…,1" has an odd length: one space before the `]` when the size asks for an even one.
            let head = "{\"data\":{\"items\":[";
            let tail = if size.saturating_sub(head.len() + 3) % 2 == 0 { " ]}}" } else { "]}}" };
            return streamed(StatusCode::OK, size, head, b"1,", tail);
        }
        Some(GqlFault::DupData) => {
            return (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], "{\"data\":{\"viewer\":{\"id\":\"first\"}},\"data\":null}").into_response()
        }
        Some(GqlFault::Status { status, retry_after }) => {
            let body = json!({ "errors": [{ "message": "Service unavailable", "extensions": { "code": "SERVICE_UNAVAILABLE" } }] });
            return with_retry_after(json_resp(StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE), body), retry_after);
        }
        Some(GqlFault::PartialUnauthorized { echo }) => {
            let mut data = json!({ "createEvent": { "id": "event-1", "audit": null } });
            if echo {
                data["debug"] = json!({ "seenAuthorization": header_text(&headers, "authorization") });
            }
            let error = json!({ "message": "not allowed to read audit", "path": ["createEvent", "audit"], "extensions": { "code": "UNAUTHORIZED" } });
            return json_resp(StatusCode::OK, json!({ "data": data, "errors": [error] }));
        }
        None => {}
    }
    if query.contains("createEvent") {
        if !scopes.iter().any(|x| x == "write") {
            return s.gql_error("INSUFFICIENT_SCOPES", "Missing scope: write");
        }
        let name = req["variables"]["name"].clone();
        return json_resp(StatusCode::OK, json!({ "data": { "createEvent": { "id": "q-evt-1", "name": name } } }));
    }
    if query.contains("brokenField") {
        return json_resp(
            StatusCode::OK,
            json!({ "data": { "viewer": { "id": "viewer-1" }, "brokenField": null }, "errors": [{ "message": "brokenField failed", "path": ["brokenField"], "extensions": { "code": "INTERNAL" } }] }),
        );
    }
    if query.contains("viewer") {
        return json_resp(StatusCode::OK, json!({ "data": { "viewer": { "id": "viewer-1", "scopes": scopes } } }));
    }
    json_resp(StatusCode::OK, json!({ "errors": [{ "message": "Cannot query this field", "extensions": { "code": "GRAPHQL_VALIDATION_FAILED" } }] }))
}

async fn stats(AxState(st): AxState<Shared>) -> Response {
    json_resp(StatusCode::OK, st.lock().unwrap().stats_json())
}

fn queued(r: Result<(), String>) -> Response {
    match r {
        Ok(()) => json_resp(StatusCode::OK, json!({"ok": true})),
        Err(e) => json_resp(StatusCode::BAD_REQUEST, json!({"error": e})),
    }
}

async fn faults(AxState(st): AxState<Shared>, Json(v): Json<Value>) -> Response {
    queued(st.lock().unwrap().set_faults(&v))
}

async fn api_faults(AxState(st): AxState<Shared>, Json(v): Json<Value>) -> Response {
    queued(st.lock().unwrap().set_api_faults(&v))
}

async fn graphql_faults(AxState(st): AxState<Shared>, Json(v): Json<Value>) -> Response {
    queued(st.lock().unwrap().set_gql_faults(&v))
}

async fn control(AxState(st): AxState<Shared>, axum::extract::Path(what): axum::extract::Path<String>, body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
    let mut s = st.lock().unwrap();
    match what.as_str() {
        "reset" => s.reset(),
        "expire" => s.expire_all(),
        "revoke" => {
            s.revoke_access();
            if v["refresh"].as_bool() == Some(true) {
                s.revoke_refresh();
            }
        }
        "qpien-scopes" => s.qpien_scopes = v["scopes"].as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect()).unwrap_or_default(),
        // Token lifetimes for tokens issued from now on (tests that cannot start their own emulator).
        "ttl" => {
            s.ttl = v["token"].as_u64().unwrap_or(s.ttl);
            s.qpien_ttl = v["qpien"].as_u64().unwrap_or(s.qpien_ttl);
        }
        "graphql-error-status" => s.gql_http_errors = v["http"].as_bool().unwrap_or(false),
        _ => return json_resp(StatusCode::NOT_FOUND, json!({"error": "unknown control"})),
    }
    json_resp(StatusCode::OK, json!({"ok": true}))
}

/// Browser tests call from another origin: allow it (the real services decide for themselves).
async fn cors(req: Request<Body>, next: Next) -> Response {
    if req.method() == Method::OPTIONS {
        return Response::builder()
            .status(204)
            .header("access-control-allow-origin", "*")
            .header("access-control-allow-methods", "GET, POST, OPTIONS")
            .header("access-control-allow-headers", "authorization, content-type, accept, ocp-apim-subscription-key")
            .header("access-control-max-age", "600")
            .body(Body::empty())
            .unwrap();
    }
    let mut r = next.run(req).await;
    r.headers_mut().insert("access-control-allow-origin", "*".parse().unwrap());
    r.headers_mut().insert("access-control-expose-headers", "retry-after".parse().unwrap());
    r
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = arg(&args, "--port").and_then(|p| p.parse().ok()).unwrap_or(0);
    let ttl: u64 = arg(&args, "--token-ttl").and_then(|p| p.parse().ok()).unwrap_or(3600);
    let qpien_ttl: u64 = arg(&args, "--qpien-ttl").and_then(|p| p.parse().ok()).unwrap_or(3600);
    let st: Shared = Arc::new(Mutex::new(State::new(ttl, qpien_ttl)));
    let app = Router::new()
        .route("/core/connect/token", post(token))
        .route("/core/connect/authorize", get(authorize_form).post(authorize_submit))
        .route("/graphql", post(graphql))
        .route("/_emulator/stats", get(stats))
        .route("/_emulator/faults", post(faults))
        .route("/_emulator/api-faults", post(api_faults))
        .route("/_emulator/graphql-faults", post(graphql_faults))
        .route("/_emulator/{what}", post(control))
        .route("/checkin/{*rest}", axum::routing::any(gateway))
        .route("/comms/{*rest}", axum::routing::any(gateway))
        .route("/", get(|| async { "qauth emulator" }))
        .layer(middleware::from_fn(cors))
        .with_state(st);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        println!("qauth-emulator listening on http://{addr}");
        use std::io::Write;
        std::io::stdout().flush().ok();
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .expect("serve");
    });
}

/// `r` with a Retry-After header, if one is given (as it is, if the header can carry it).
fn with_retry_after(mut r: Response, retry_after: Option<String>) -> Response {
    if let Some(v) = retry_after.and_then(|s| s.parse().ok()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}
