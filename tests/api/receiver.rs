//! A webhook receiver on 127.0.0.1 for tests: records every request and answers as the
//! test's behaviour says (status, delay, `Retry-After`).

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use scimgate::webhooks::signing;
use serde_json::Value;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub json: Value,
    /// What the receiver answered.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    /// The events carried: the body, or each element of a batch.
    pub fn events(&self) -> Vec<Value> {
        match &self.json {
            Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        }
    }

    /// Asserts both signatures verify: Standard Webhooks with one of `secrets` (every
    /// valid secret signs during a rotation) and BoxyHQ-Signature with the first.
    pub fn assert_signed(&self, secrets: &[&str]) {
        let id = self.header("webhook-id");
        let ts: i64 = self.header("webhook-timestamp").parse().expect("timestamp");
        assert!(
            (ts - chrono::Utc::now().timestamp()).abs() < 300,
            "fresh timestamp"
        );
        let sig = self.header("webhook-signature");
        for s in secrets {
            assert!(
                signing::verify_standard(s, id, ts, &self.body, sig),
                "standard signature with {s}: {sig}"
            );
        }
        assert!(
            signing::verify_boxyhq(secrets[0], &self.body, self.header("boxyhq-signature")),
            "BoxyHQ signature"
        );
        assert!(!signing::verify_standard("wrong", id, ts, &self.body, sig));
    }
}

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub delay: Duration,
    pub retry_after: Option<String>,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            delay: Duration::ZERO,
            retry_after: None,
        }
    }
}

/// Decides the reply from the body and how many times this `webhook-id` came before.
type Behaviour = dyn Fn(&Value, usize) -> Reply + Send + Sync;

struct Shared {
    /// Requests that arrived (answered or not yet).
    started: std::sync::atomic::AtomicUsize,
    log: Mutex<Vec<Received>>,
    behaviour: Box<Behaviour>,
}

pub struct Receiver {
    pub url: String,
    shared: Arc<Shared>,
    handle: actix_web::dev::ServerHandle,
}

async fn handle(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let headers: HashMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    shared
        .started
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let id = headers.get("webhook-id").cloned().unwrap_or_default();
    let seen = {
        let log = shared.log.lock().unwrap();
        log.iter().filter(|r| r.header("webhook-id") == id).count()
    };
    let reply = (shared.behaviour)(&json, seen);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    shared.log.lock().unwrap().push(Received {
        headers,
        body: body.to_vec(),
        json,
        status: reply.status,
    });
    let mut r = HttpResponse::build(actix_web::http::StatusCode::from_u16(reply.status).unwrap());
    if let Some(ra) = reply.retry_after {
        r.insert_header(("Retry-After", ra));
    }
    r.body(format!("answered {}", reply.status))
}

impl Receiver {
    /// A receiver answering per `behaviour`, at `http://127.0.0.1:<port>/hook`.
    pub async fn start(behaviour: impl Fn(&Value, usize) -> Reply + Send + Sync + 'static) -> Self {
        let shared = Arc::new(Shared {
            started: Default::default(),
            log: Mutex::new(Vec::new()),
            behaviour: Box::new(behaviour),
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let data = web::Data::new(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(handle))
        })
        .workers(2)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url: format!("http://{addr}/hook"),
            shared,
            handle,
        }
    }

    /// A receiver that accepts everything.
    pub async fn ok() -> Self {
        Self::start(|_, _| Reply::status(200)).await
    }

    /// Requests that arrived, including those still being answered.
    pub fn started(&self) -> usize {
        self.shared
            .started
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Requests answered 2xx, in arrival order.
    pub fn delivered(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    /// Events of the 2xx deliveries, in arrival order.
    pub fn delivered_events(&self) -> Vec<Value> {
        self.delivered().iter().flat_map(Received::events).collect()
    }

    /// Waits (up to `limit`) until `done` holds for the delivered events.
    pub async fn wait_until(&self, limit: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let events = self.delivered_events();
            if done(&events) {
                return events;
            }
            if started.elapsed() > limit {
                panic!(
                    "receiver condition not met within {limit:?}; delivered: {:#?}",
                    events
                        .iter()
                        .map(|e| (e["sequence"].clone(), e["event"].clone()))
                        .collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `n` events were delivered.
    pub async fn wait_for(&self, n: usize) -> Vec<Value> {
        self.wait_until(Duration::from_secs(20), |e| e.len() >= n)
            .await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// Sequences of events, for order checks.
pub fn sequences(events: &[Value]) -> Vec<i64> {
    events
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect()
}
