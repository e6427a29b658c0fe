//! The README's run command: `weir serve` with the example rulesets sets up the demo
//! merchant, prints a key and a curl line, and every business's example order places.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value as Json;

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weir_serve_demo_places_every_example_order() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("weir.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db", &db])
        // Logging from the server's worker threads must not block them (it once did:
        // the CLI held the stderr lock for the server's lifetime).
        .env("WEIR_LOG", "debug")
        .current_dir(&repo)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _guard = Killed(child);
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let done = line.starts_with("API description");
        lines.push(line);
        if done {
            break;
        }
    }
    let text = lines.join("\n");
    assert!(
        text.contains("rulesets beauty_flagship, chain_store, fresh_grocery, livestream active"),
        "{text}"
    );
    let base = text
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_owned();
    let key = text
        .split(['=', '\n', ' '])
        .find(|w| w.starts_with("weir_"))
        .unwrap()
        .to_owned();
    assert!(text.contains("curl -s"), "{text}");
    assert!(
        text.contains("-d @rulesets/beauty/examples/api-order.json"),
        "{text}"
    );

    let http = reqwest::Client::new();
    // The description's request examples are real ones: the demo merchant accepts each
    // (an order, goods in, a presale).
    let openapi: Json = http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in ["/v1/orders", "/v1/inventory/receipts", "/v1/presales"] {
        let pointer = format!(
            "/paths/{}/post/requestBody/content/application~1json/example",
            path.replace('/', "~1")
        );
        let example = openapi
            .pointer(&pointer)
            .cloned()
            .unwrap_or_else(|| panic!("POST {path} has an example"));
        let response = http
            .post(format!("{base}{path}"))
            .bearer_auth(&key)
            .json(&example)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let answer = response.text().await.unwrap();
        assert_eq!(status, 201, "{path}: {answer}");
    }

    for (folder, ruleset) in [
        ("beauty", "beauty_flagship"),
        ("chain_store", "chain_store"),
        ("fresh_grocery", "fresh_grocery"),
        ("livestream", "livestream"),
    ] {
        let body = std::fs::read_to_string(
            repo.join("rulesets")
                .join(folder)
                .join("examples/api-order.json"),
        )
        .unwrap();
        let response = http
            .post(format!("{base}/v1/orders"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let placed: Json = response.json().await.unwrap();
        assert_eq!(status, 201, "{folder}: {placed}");
        assert_eq!(placed["decisions"]["ruleset"], ruleset, "{folder}");
        assert!(
            !placed["reservations"].as_array().unwrap().is_empty(),
            "{folder}: {placed}"
        );
        // The demo merchant stocks the gifts its promotions give: every gift of an
        // example order is given, and reserved where it is given.
        let gifts = placed["decisions"]["promotions"]["gifts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for gift in &gifts {
            assert_eq!(gift["given"], true, "{folder}: {gift}");
            assert!(
                placed["reservations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| { r["sku"] == gift["sku"] && r["location_id"] == gift["location"] }),
                "{folder}: {gift} has no reservation in {placed}"
            );
        }
        if folder == "beauty" {
            // The README's order: ¥1,598 earns the vanity case (满1500) and a sample.
            assert_eq!(gifts.len(), 2, "{placed}");
        }
    }
}
