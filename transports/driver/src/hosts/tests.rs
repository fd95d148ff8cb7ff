//! Reading hosts.toml: hosts in order with their settings, client certificates and
//! dial timeouts in each form, what is refused, and where the file is found.

use super::*;

fn reference() -> Reference {
    Reference::parse("docker.io/library/alpine:3").unwrap()
}

#[test]
fn hosts_in_order_with_their_settings() {
    let text = r#"
server = "https://registry-1.docker.io"

[host."http://mirror-b:5000"]
  capabilities = ["pull"]
  ca = ["b.pem", "/abs/c.pem"]
  [host."http://mirror-b:5000".header]
x-team = ["build", "ci"]

[host."mirror-a.example/base"]
  override_path = true
  skip_verify = true
"#;
    let c = parse(
        text,
        Path::new("/etc/hosts.d/docker.io/hosts.toml"),
        &reference(),
        false,
    )
    .unwrap();
    let urls: Vec<String> = c.mirrors.iter().map(|h| h.url.to_string()).collect();
    assert_eq!(
        urls,
        ["http://mirror-b:5000/", "https://mirror-a.example/base"]
    );
    assert_eq!(
        c.mirrors[0].capabilities,
        Capabilities {
            pull: true,
            resolve: false,
            push: false
        }
    );
    assert_eq!(
        c.mirrors[0].headers,
        [
            ("x-team".into(), "build".into()),
            ("x-team".into(), "ci".into())
        ]
    );
    assert!(c.mirrors[1].override_path);
    assert_eq!(c.mirrors[1].capabilities, Capabilities::ALL);
    let b = "mirror-b:5000".to_string();
    assert_eq!(
        c.ca_files,
        [
            (b.clone(), PathBuf::from("/etc/hosts.d/docker.io/b.pem")),
            (b, PathBuf::from("/abs/c.pem"))
        ]
    );
    assert_eq!(c.skip_verify, ["mirror-a.example"]);
    assert!(c.upstream.upstream, "server is the registry's own API host");
}

/// containerd's three forms of `client`: one file holding both, a list of such files,
/// a list of pairs (a key of "" meaning the certificate's own file); each for its
/// host alone.
#[test]
fn client_certificates_in_each_form() {
    let text = r#"
[host."https://one.example"]
  client = "both.pem"
[host."https://two.example:5000"]
  client = ["two.pem", "two-more.pem"]
[host."https://three.example"]
  client = [["/abs/three.crt", "three.key"], ["four.pem", ""]]
"#;
    let c = parse(text, Path::new("/h/reg/hosts.toml"), &reference(), false).unwrap();
    let p = |s: &str| PathBuf::from(s);
    assert_eq!(
        c.client_files,
        [
            (
                "one.example".into(),
                p("/h/reg/both.pem"),
                p("/h/reg/both.pem")
            ),
            (
                "two.example:5000".into(),
                p("/h/reg/two.pem"),
                p("/h/reg/two.pem")
            ),
            (
                "two.example:5000".into(),
                p("/h/reg/two-more.pem"),
                p("/h/reg/two-more.pem")
            ),
            (
                "three.example".into(),
                p("/abs/three.crt"),
                p("/h/reg/three.key")
            ),
            (
                "three.example".into(),
                p("/h/reg/four.pem"),
                p("/h/reg/four.pem")
            ),
        ]
    );
    assert_eq!(
        c.client_of(&c.mirrors[1]),
        Some((p("/h/reg/two.pem"), p("/h/reg/two.pem")))
    );
    assert_eq!(c.client_of(&c.upstream), None);
    for bad in [
        "[host.\"https://x\"]\nclient = 3",
        "[host.\"https://x\"]\nclient = [[]]",
        "[host.\"https://x\"]\nclient = [[\"a\", \"b\", \"c\"]]",
    ] {
        assert!(
            parse(bad, Path::new("h"), &reference(), false).is_err(),
            "{bad:?}"
        );
    }
}

/// `dial_timeout` as Go writes durations, bounded, for its host alone.
#[test]
fn dial_timeouts_are_go_durations_within_bounds() {
    let text =
        "[host.\"https://m.example\"]\n  dial_timeout = \"1m30s\"\n[host.\"https://n.example\"]\n";
    let c = parse(text, Path::new("h"), &reference(), false).unwrap();
    assert_eq!(
        c.dial_timeout_of(&c.mirrors[0]),
        Some(Duration::from_secs(90))
    );
    assert_eq!(c.dial_timeout_of(&c.mirrors[1]), None);
    for (text, want) in [("500ms", 500), ("1.5s", 1500), ("2m", 120_000)] {
        assert_eq!(
            go_duration(text),
            Some(Duration::from_millis(want)),
            "{text}"
        );
    }
    for bad in [
        "",
        "1",
        "s",
        "0s",
        "11m",
        "-1s",
        "1x",
        "99999999999999999999h",
    ] {
        assert_eq!(go_duration(bad), None, "{bad:?}");
    }
    let bad = "[host.\"https://m.example\"]\n  dial_timeout = 5\n";
    assert!(parse(bad, Path::new("h"), &reference(), false).is_err());
}

#[test]
fn what_is_not_a_host_configuration_is_refused() {
    let f = Path::new("hosts.toml");
    for bad in [
        "server = 3",
        "[host.\"ftp://x\"]",
        "[host.\"https://user:pw@x\"]",
        "[host.\"https://x\"]\ncapabilities = [1]",
        "[host.\"https://x\"]\nskip_verify = \"yes\"",
        "[host.\"https://x\".header]\n\"bad header\" = \"v\"",
        "[host.\"https://x\".header]\nx = \"line\\nbreak\"",
        "not toml at all [",
    ] {
        assert!(
            parse(bad, f, &reference(), false).is_err(),
            "{bad:?} accepted"
        );
    }
}

#[test]
fn the_registry_directory_then_default() {
    let dir = tempfile::tempdir().unwrap();
    assert!(load(dir.path(), &reference(), false).unwrap().is_none());
    fs::create_dir_all(dir.path().join("_default")).unwrap();
    fs::write(
        dir.path().join("_default/hosts.toml"),
        "[host.\"http://d:1\"]\n",
    )
    .unwrap();
    let c = load(dir.path(), &reference(), false).unwrap().unwrap();
    assert_eq!(c.mirrors[0].url.as_str(), "http://d:1/");
    fs::create_dir_all(dir.path().join("docker.io")).unwrap();
    fs::write(
        dir.path().join("docker.io/hosts.toml"),
        "[host.\"http://r:2\"]\n",
    )
    .unwrap();
    let c = load(dir.path(), &reference(), false).unwrap().unwrap();
    assert_eq!(c.mirrors[0].url.as_str(), "http://r:2/");
}
