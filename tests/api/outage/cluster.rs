//! Stopping and starting the local PostgreSQL cluster that serves the
//! suite (`pg_ctlcluster`, found with `pg_lsclusters`).

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database};

/// The PostgreSQL cluster behind the suite's server, stopped (from the
/// moment its shutdown began: it refuses new connections from then on).
/// Every other user of that server sees the outage too: it is started
/// again by [`StoppedCluster::start`] or, whatever happened to the test,
/// on drop.
pub struct StoppedCluster {
    version: String,
    name: String,
    host: String,
    port: u16,
    pub stopped_at: Instant,
    running: bool,
}

impl StoppedCluster {
    pub async fn stop(admin_url: &str) -> Self {
        let url = reqwest::Url::parse(admin_url).expect("the PostgreSQL URL");
        let port = url.port().unwrap_or(5432);
        let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
        let list = tokio::process::Command::new("pg_lsclusters")
            .arg("--no-header")
            .output()
            .await
            .expect("pg_lsclusters (postgresql-common) lists the clusters");
        let list = String::from_utf8_lossy(&list.stdout);
        let (version, name) = list
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .find(|fields| fields.get(2) == Some(&port.to_string().as_str()))
            .map(|fields| (fields[0].to_owned(), fields[1].to_owned()))
            .unwrap_or_else(|| panic!("no local cluster on port {port}: {list}"));
        // Written out beforehand, so that the shutdown's own checkpoint
        // (which other tests' databases can make long) is short.
        let admin = Database::connect(admin_url)
            .await
            .expect("connect to the PostgreSQL server");
        admin
            .execute_unprepared("CHECKPOINT")
            .await
            .expect("CHECKPOINT");
        let _ = admin.close().await;
        let stopping = Instant::now();
        let status = tokio::process::Command::new("pg_ctlcluster")
            .args([&version, &name, "stop"])
            .status()
            .await
            .expect("pg_ctlcluster");
        assert!(
            status.success(),
            "pg_ctlcluster {version} {name} stop failed"
        );
        eprintln!(
            "PostgreSQL stopped in {:.2} s",
            stopping.elapsed().as_secs_f64()
        );
        Self {
            version,
            name,
            host,
            port,
            stopped_at: stopping,
            running: false,
        }
    }

    /// Starts the cluster again; returns when it accepts connections.
    pub async fn start(&mut self) -> Instant {
        let cluster = (self.version.clone(), self.name.clone());
        let ready = tokio::task::spawn_blocking({
            let (host, port) = (self.host.clone(), self.port);
            move || start_cluster(&cluster.0, &cluster.1, &host, port)
        })
        .await
        .expect("starting the cluster");
        self.running = true;
        assert!(ready, "PostgreSQL did not come back within 60 s");
        Instant::now()
    }
}

/// `pg_ctlcluster … start`, then waits (60 s at most) until `pg_isready`
/// says it accepts connections.
fn start_cluster(version: &str, name: &str, host: &str, port: u16) -> bool {
    let _ = std::process::Command::new("pg_ctlcluster")
        .args([version, name, "start"])
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let ready = std::process::Command::new("pg_isready")
            .args(["-q", "-h", host, "-p", &port.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

impl Drop for StoppedCluster {
    fn drop(&mut self) {
        if !self.running {
            eprintln!("starting PostgreSQL again after a failed test");
            start_cluster(&self.version, &self.name, &self.host, self.port);
        }
    }
}
