//! Debian's nginx as the load balancer in front of several server instances,
//! configured as the README shows.

use std::net::SocketAddr;
use std::time::Duration;

/// Debian's nginx in front of instances, as in the README: round-robin over
/// `upstreams`, WebSocket upgrades passed on; stopped when dropped.
pub struct LoadBalancer {
    child: std::process::Child,
    dir: std::path::PathBuf,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl LoadBalancer {
    /// Starts one on a free loopback port.
    pub async fn start(upstreams: &[SocketAddr]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], port)), upstreams).await
    }

    /// Starts one listening on `addr`.
    pub async fn start_on(addr: SocketAddr, upstreams: &[SocketAddr]) -> Self {
        let port = addr.port();
        let dir = std::env::temp_dir().join(format!("gamenet-nginx-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let servers: String = upstreams
            .iter()
            .map(|u| format!("        server {u} max_fails=1 fail_timeout=10s;\n"))
            .collect();
        let d = dir.display();
        let config = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\nevents {{ worker_connections 1024; }}\n\
             http {{\n    access_log off;\n    client_body_temp_path {d}/body;\n\
             proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n\
             upstream gamenet {{\n{servers}    }}\n    server {{\n\
             listen {addr};\n        location / {{\n\
             proxy_pass http://gamenet;\n            proxy_http_version 1.1;\n\
             proxy_set_header Upgrade $http_upgrade;\n\
             proxy_set_header Connection \"upgrade\";\n\
             proxy_set_header Host $host;\n\
             proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
             proxy_read_timeout 120s;\n        }}\n    }}\n}}\n"
        );
        let file = dir.join("nginx.conf");
        std::fs::write(&file, config).unwrap();
        let child = std::process::Command::new("nginx")
            .arg("-c")
            .arg(&file)
            .arg("-p")
            .arg(&dir)
            .spawn()
            .expect("nginx (Debian package nginx; `cargo xtask test` installs it)");
        let balancer = Self { child, dir, addr };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "nginx did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        balancer
    }
}

impl Drop for LoadBalancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
