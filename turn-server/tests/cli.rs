//! The `bedside-turn` binary as an operator starts it: a clear refusal without a secret, and a
//! STUN Binding answered on the UDP port it was told to listen on. (This file also makes
//! `cargo test` build the binary that the black-box harness in tests/turn drives.)

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bedside-turn");

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn without_a_secret_it_refuses_to_start_and_says_why() {
    let out = Command::new(BIN)
        .args(["--listen-udp", "127.0.0.1:0"])
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("secret_file is required"), "{err}");
}

/// A STUN Binding request (RFC 8489 §5): type 0x0001, no attributes, the magic cookie and a
/// transaction id.
fn binding_request(txid: [u8; 12]) -> Vec<u8> {
    let mut m = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    m.extend_from_slice(&txid);
    m
}

#[test]
fn it_answers_a_stun_binding_on_its_udp_port() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "tK3pQ9vX2mL7wR4zB8nF1cH6jD5sG0aE\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // A free UDP port: bound and released, then given to the server.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = Server(
        Command::new(BIN)
            .args([
                "--listen-udp",
                &format!("127.0.0.1:{port}"),
                "--secret-file",
            ])
            .arg(&secret)
            .args(["--realm", "bedside.test"])
            .env("BEDSIDE_TURN_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let txid = *b"bedside-test";
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 1500];
    let answer = loop {
        assert!(Instant::now() < deadline, "no Binding response");
        client
            .send_to(&binding_request(txid), ("127.0.0.1", port))
            .unwrap();
        if let Ok((n, _)) = client.recv_from(&mut buf) {
            break buf[..n].to_vec();
        }
    };
    assert_eq!(&answer[0..2], &[0x01, 0x01], "a Binding success response");
    assert_eq!(&answer[4..8], &[0x21, 0x12, 0xa4, 0x42], "the magic cookie");
    assert_eq!(&answer[8..20], &txid, "our transaction id");
    // XOR-MAPPED-ADDRESS (0x0020) carries our own port, XORed with the cookie's top half.
    let ours = client.local_addr().unwrap().port() ^ 0x2112;
    let mut at = 20;
    let mut mapped = None;
    while at + 4 <= answer.len() {
        let kind = u16::from_be_bytes([answer[at], answer[at + 1]]);
        let len = usize::from(u16::from_be_bytes([answer[at + 2], answer[at + 3]]));
        if kind == 0x0020 && len >= 8 {
            mapped = Some(u16::from_be_bytes([answer[at + 6], answer[at + 7]]));
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    assert_eq!(mapped, Some(ours), "XOR-MAPPED-ADDRESS names our port");
}
