//! The pool runs no statement on checkout: a connection that dies (a restarted server, a
//! terminated backend) fails one request with a retryable 503 and is discarded.

use std::time::Duration;

use diesel::{Connection, PgConnection};
use scimgate::store::{Backend, Db};

use crate::backend_tests;
use crate::common::TestApp;

backend_tests!(dead_connections_fail_once_and_are_discarded);

async fn dead_connections_fail_once_and_are_discarded(app: TestApp) {
    if app.db.backend() != Backend::Postgres {
        return; // A SQLite connection is a file handle; nothing terminates it.
    }
    let name = format!("scimgate_pool_{}", uuid::Uuid::new_v4().simple());
    let url = format!("{}&application_name={name}", app.database_url());
    let admin = std::env::var("SCIMGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    tokio::task::spawn_blocking(move || {
        let db = Db::open_with(&url, Some(Duration::from_secs(5))).expect("open");
        // Fill the pool: several connections in use at once, then back to idle.
        let held: Vec<_> = (0..4).map(|_| db.conn().expect("connection")).collect();
        drop(held);
        let mut killer = PgConnection::establish(&admin).expect("admin connection");
        let killed = terminate(&mut killer, &name);
        assert!(killed >= 4, "{killed} connections terminated");
        std::thread::sleep(Duration::from_millis(200));
        let mut failures = 0;
        for _ in 0..12 {
            let mut c = db.conn().expect("a connection");
            match scimgate::store::ping(&mut c) {
                Ok(()) => {}
                Err(e) => {
                    assert_eq!(e.status(), 503, "{e}");
                    failures += 1;
                }
            }
        }
        // Each dead connection fails at most once; then fresh ones serve.
        assert!(
            failures <= killed,
            "{failures} failures, {killed} connections killed"
        );
        for _ in 0..8 {
            let mut c = db.conn().expect("a connection");
            scimgate::store::ping(&mut c).expect("a live connection");
        }
    })
    .await
    .expect("join");
}

/// Terminates the backends of connections named `name`; returns how many.
fn terminate(admin: &mut PgConnection, name: &str) -> usize {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Killed {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        #[allow(dead_code)]
        pg_terminate_backend: bool,
    }
    diesel::sql_query(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{name}'"
    ))
    .load::<Killed>(admin)
    .expect("terminate")
    .len()
}
