//! A hostile server: it answers chosen requests with whatever a broken or malicious service, a
//! proxy or a man in the middle might send (redirects to other origins, lying counts, pages that
//! repeat, next links in a cycle, echoed tokens), and forwards everything else to a real server
//! behind it (the project's fakes or emulator). Every request it sees is recorded, so a test can
//! say what a server was, and was not, sent.
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One answer a rule gives: status, headers and body. `{self}` in a header value or the body is
/// replaced by the hostile server's own base URL, and `{rest}` by the request's path and query
/// after the rule's `path_prefix`.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn json(status: u16, body: impl Into<String>) -> Answer {
        Answer {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
        }
    }

    pub fn redirect(status: u16, to: &str) -> Answer {
        Answer {
            status,
            headers: vec![("location".into(), to.into())],
            body: String::new(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Which requests a rule answers.
#[derive(Clone, Debug, Default)]
pub struct When {
    pub method: Option<Method>,
    /// The path ends with this.
    pub path_suffix: Option<String>,
    /// The path starts with this; `{rest}` in the answer is the path and query after it.
    pub path_prefix: Option<String>,
    /// The query string contains this.
    pub query_contains: Option<String>,
    /// The query string does not contain this.
    pub query_lacks: Option<String>,
}

impl When {
    pub fn path(suffix: &str) -> When {
        When {
            path_suffix: Some(suffix.into()),
            ..Default::default()
        }
    }

    fn matches(&self, method: &Method, uri: &Uri) -> bool {
        let query = uri.query().unwrap_or_default();
        self.method.as_ref().is_none_or(|m| m == method)
            && self.path_suffix.as_ref().is_none_or(|s| uri.path().ends_with(s.as_str()))
            && self.path_prefix.as_ref().is_none_or(|s| uri.path().starts_with(s.as_str()))
            && self.query_contains.as_ref().is_none_or(|q| query.contains(q.as_str()))
            && self.query_lacks.as_ref().is_none_or(|q| !query.contains(q.as_str()))
    }
}

/// A request the hostile server saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    /// Whether any header or the body holds `secret`.
    pub fn carries(&self, secret: &str) -> bool {
        self.headers
            .values()
            .any(|v| v.as_bytes().windows(secret.len()).any(|w| w == secret.as_bytes()))
            || self.body.windows(secret.len()).any(|w| w == secret.as_bytes())
    }
}

struct Shared {
    rules: Mutex<Vec<(When, Answer)>>,
    upstream: Option<String>,
    seen: Mutex<Vec<Seen>>,
    base_url: Mutex<String>,
    client: reqwest::Client,
}

/// The hostile server on its own runtime; stops when dropped.
pub struct Hostile {
    pub base_url: String,
    shared: Arc<Shared>,
    _rt: tokio::runtime::Runtime,
}

impl Hostile {
    /// A hostile server that answers only by its rules (404 otherwise).
    pub fn start() -> Hostile {
        Hostile::in_front_of(None)
    }

    /// A hostile server forwarding what no rule answers to `upstream` (a base URL whose path
    /// the hostile server's paths are appended to).
    pub fn in_front_of(upstream: Option<&str>) -> Hostile {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let shared = Arc::new(Shared {
            rules: Mutex::default(),
            upstream: upstream.map(|u| u.trim_end_matches('/').to_string()),
            seen: Mutex::default(),
            base_url: Mutex::default(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        });
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        *shared.base_url.lock().unwrap() = base_url.clone();
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Hostile { base_url, shared, _rt: rt }
    }

    /// Answer requests that match `when` with `answer` (the first matching rule wins).
    pub fn on(&self, when: When, answer: Answer) -> &Hostile {
        self.shared.rules.lock().unwrap().push((when, answer));
        self
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }
}

async fn handle(State(shared): State<Arc<Shared>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    shared.seen.lock().unwrap().push(Seen {
        method: method.clone(),
        uri: uri.to_string(),
        headers: headers.clone(),
        body: body.clone(),
    });
    let own = shared.base_url.lock().unwrap().clone();
    let rule = shared.rules.lock().unwrap().iter().find(|(w, _)| w.matches(&method, &uri)).cloned();
    if let Some((when, a)) = rule {
        let full = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let rest = when.path_prefix.as_deref().and_then(|p| full.strip_prefix(p)).unwrap_or(full);
        let fill = |t: &str| t.replace("{self}", &own).replace("{rest}", rest);
        let mut resp = (StatusCode::from_u16(a.status).unwrap(), fill(&a.body)).into_response();
        for (k, v) in &a.headers {
            resp.headers_mut()
                .insert(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), fill(v).parse().unwrap());
        }
        return resp;
    }
    let Some(upstream) = &shared.upstream else {
        return (StatusCode::NOT_FOUND, "no rule").into_response();
    };
    let url = format!("{upstream}{}", uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let mut req = shared
        .client
        .request(reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap(), &url);
    for (k, v) in headers.iter() {
        if k != "host" && k != "content-length" {
            req = req.header(k.as_str(), v.as_bytes());
        }
    }
    match req.body(body).send().await {
        Ok(r) => {
            let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
            let mut out = HeaderMap::new();
            for (k, v) in r.headers() {
                if k != "content-length" && k != "transfer-encoding" {
                    // Links the upstream writes point at the upstream: point them here.
                    let text = v.to_str().unwrap_or_default().replace(upstream.as_str(), &own);
                    if let Ok(v) = text.parse() {
                        out.insert(axum::http::HeaderName::from_bytes(k.as_str().as_bytes()).unwrap(), v);
                    }
                }
            }
            let body = r.text().await.unwrap_or_default().replace(upstream.as_str(), &own);
            (status, out, body).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
