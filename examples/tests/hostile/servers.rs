//! Hostile servers: credentials that must not follow a redirect, endless bodies and pages, absurd lifetimes and timeouts, a malformed Docker config.

use super::*;

#[test]
fn a_redirect_targets_challenge_gets_no_password_and_the_pull_ends() {
    let img = img(1);
    let cdn = Hostile::start(|req, me| {
        if req.path.starts_with("/token") {
            return json(200, &[], r#"{"token":"stolen"}"#);
        }
        let challenge = format!(r#"Bearer realm="http://{me}/token",service="cdn""#);
        json(401, &[("www-authenticate", challenge.as_str())], "{}")
    });
    let cdn_addr = cdn.addr.clone();
    let reg_img = img.clone();
    let reg = Hostile::start(move |req, _| {
        if req.path.contains("/blobs/") {
            let to = format!("http://{cdn_addr}{}", req.path);
            return Answer::Full(307, vec![("location".into(), to)], vec![]);
        }
        registry_answer(&reg_img, req)
    });
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = support::output_with_stdin(
        ocireg()
            .args([
                "pull",
                "--plain-http",
                "--username",
                "user",
                "--password-stdin",
            ])
            .arg(format!("{}/test/repo:v1", reg.addr))
            .arg(dir.path()),
        b"hunter2\n",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(60));
    let err = stderr(&out);
    assert!(err.contains(&format!("http://{}", cdn.addr)), "{err}");
    let seen = cdn.seen();
    assert!(
        seen.iter().all(|r| r.header("authorization").is_none()),
        "{seen:?}"
    );
    assert!(
        seen.iter().all(|r| !r.path.starts_with("/token")),
        "{seen:?}"
    );
    // each blob: redirected, refused, started again at the registry, refused: done
    assert!(
        seen.len() <= 2 * img.blobs().count(),
        "{} requests",
        seen.len()
    );
}

#[test]
fn an_endless_error_body_is_not_read_to_its_end() {
    let server = Hostile::start(|_, _| Answer::Endless(500, vec![]));
    let started = Instant::now();
    let out = ocireg()
        .args([
            "inspect",
            "--plain-http",
            "--attempts",
            "2",
            "--timeout",
            "60",
        ])
        .arg(format!("{}/test/repo:v1", server.addr))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("500"), "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    // what was written is what the socket buffers held, not what the server could send
    let streamed = *server.streamed.lock().unwrap();
    assert!(streamed < 64 << 20, "{streamed} bytes streamed");
}

#[test]
fn endless_tag_pages_print_as_they_come_and_stop_at_the_bound() {
    let server = Hostile::start(|req, _| {
        let n: u64 = req
            .path
            .split("last=t")
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let link = format!(
            "</v2/test/repo/tags/list?n=1&last=t{}>; rel=\"next\"",
            n + 1
        );
        json(
            200,
            &[("link", link.as_str())],
            &format!(r#"{{"name":"test/repo","tags":["t{}"]}}"#, n + 1),
        )
    });
    let out = ocireg()
        .args(["tags", "--plain-http", "--max-pages", "20"])
        .arg(format!("{}/test/repo", server.addr))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let tags: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(tags.len(), 20, "{tags:?}");
    assert_eq!(tags[0], "t1");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("more than 20") && err.contains("--max-pages"),
        "{err}"
    );
}

#[test]
fn absurd_token_lifetimes_and_timeouts_do_not_panic() {
    // a lifetime within i64 is capped and used (the manifest is then asked for, and
    // not found); one past it is refused as a malformed token response
    for (expires_in, said) in [
        ("9223372036854775807", "tag v1 not found"),
        ("18446744073709551615", "malformed"),
    ] {
        let body = format!(r#"{{"token":"t","expires_in":{expires_in}}}"#);
        let server = Hostile::start(move |req, me| {
            if req.path.starts_with("/token") {
                return json(200, &[], &body);
            }
            if req.header("authorization").is_none() {
                let c = format!(r#"Bearer realm="http://{me}/token",service="s""#);
                return json(401, &[("www-authenticate", c.as_str())], "{}");
            }
            json(
                404,
                &[],
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no"}]}"#,
            )
        });
        let out = ocireg()
            .args(["inspect", "--plain-http", "--attempts", "1"])
            .arg(format!("{}/test/repo:v1", server.addr))
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(err.contains(said), "{expires_in}: {err}");
    }
    // values a flag cannot represent are usage errors
    for args in [
        &[
            "pull",
            "--timeout",
            "18446744073709551615",
            "x/y:v1",
            "/nonexistent",
        ][..],
        &["pull", "--timeout", "0", "x/y:v1", "/nonexistent"],
        &["pull", "--concurrency", "0", "x/y:v1", "/nonexistent"],
        &["pull", "--attempts", "4294967296", "x/y:v1", "/nonexistent"],
        &["tags", "--max-pages", "0", "x/y"],
        &["serve", "--repository", "Not A Repo", "/nonexistent"],
    ] {
        let out = ocireg().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"));
    }
}

#[test]
fn a_malformed_docker_config_entry_is_skipped_and_never_printed() {
    let img = img(6);
    let server = serve_image(&img);
    let cfg = tempfile::tempdir().unwrap();
    let secret = "c2VjcmV0LXZhbHVlLXRoYXQtbXVzdC1ub3QtbGVhaw==";
    std::fs::write(
        cfg.path().join("config.json"),
        format!(
            r#"{{"auths":{{"{}":"{secret}","ghcr.io":{{"auth":{{"nested":"{secret}"}}}}}}}}"#,
            server.addr
        ),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = ocireg()
        .env("DOCKER_CONFIG", cfg.path())
        .env_remove("OCIREG_USERNAME")
        .env_remove("OCIREG_PASSWORD")
        .args(["pull", "--plain-http", "--progress", "none"])
        .arg(format!("{}/test/repo:v1", server.addr))
        .arg(dir.path())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains(secret) && !err.contains("c2VjcmV0"), "{err}");
    assert!(
        err.contains(&server.addr) && err.contains("malformed"),
        "{err}"
    );
}

#[test]
fn a_blocking_pull_of_a_layer_slower_than_the_head_timeout_needs_no_retry() {
    // The slow layer takes about 6 s; the head timeout is 1.5 s (a margin a loaded
    // machine keeps on loopback for a small blob's answer). A driver that queued the
    // other blobs' requests behind it would see their timers fire and retry them.
    let img = image(8, &[640_000, 2000, 3000], &Platform::host(), false);
    let slow = Digest::sha256(&img.layers[0]);
    let served = img.clone();
    let server = Hostile::start(move |req, _| {
        if req.path.ends_with(&slow.to_string()) {
            let body = served.layers[0].to_vec();
            return Answer::Slow(200, vec![], body, 64 * 1024, Duration::from_millis(600));
        }
        registry_answer(&served, req)
    });
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_blocking-pull"))
        .args(["--plain-http", "--head-timeout-ms=1500"])
        .arg(format!("{}/test/repo:v1", server.addr))
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&img.digest().to_string()), "{stdout}");
    assert!(stdout.trim_end().ends_with(", 0 retries"), "{stdout}");
}
