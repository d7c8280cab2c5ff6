//! HTTPS through rustls: an SP whose certificate no trusted authority signed is refused before
//! anything is sent, with an error that says so plainly and names the source and URL (and never
//! the token). The server is Python's `http.server` behind a self-signed certificate made with
//! `openssl` (installed by `scripts/test.sh` if missing).
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_untrusted_certificate_is_refused_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args([
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .args(["-keyout", "key.pem", "-out", "cert.pem"])
        .current_dir(dir.path())
        .stderr(Stdio::null())
        .status()
        .expect("openssl (scripts/test.sh installs it)");
    assert!(made.success());
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let script = format!(
        "import http.server, ssl\n\
         s = http.server.HTTPServer(('127.0.0.1', {port}), http.server.SimpleHTTPRequestHandler)\n\
         c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); c.load_cert_chain('cert.pem', 'key.pem')\n\
         s.socket = c.wrap_socket(s.socket, server_side=True)\n\
         s.serve_forever()\n"
    );
    let _server = Server(
        Command::new("python3")
            .args(["-c", &script])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the HTTPS server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("https://127.0.0.1:{port}/scim/v2");
    let ws = Workspace::new(&format!(
        "[idp.corp]\nkind = \"scim\"\nbase_url = \"{url}\"\ntoken_env = \"IT_TOKEN\"\n\n[app.tool]\nidp = \"corp\"\nbase_url = \"{url}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Eng\"]\n"
    ));
    let out = ws.cli(&["-vvv", "pull"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("idp.corp") && err.contains(&url), "{err}");
    assert!(
        err.contains("the server's TLS certificate is not trusted: it is signed by an authority this machine does not trust"),
        "{err}"
    );
    // Not retried: a certificate does not fix itself.
    assert!(!err.contains("retrying"), "{err}");
    assert!(!err.contains(TOKEN) && !stdout(&out).contains(TOKEN));
}
