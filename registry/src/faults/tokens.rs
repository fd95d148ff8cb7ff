//! The fault layer's token service ([`Fault::Token`](super::Fault::Token)): the scope a
//! request needs, and tokens issued (with an `issued_at` in the past when asked).

use bytes::Bytes;
use http::{header, Request, Response};

use super::{simple, FaultyRegistry};
use crate::routes::Reply;

/// The scope a request to `path` needs (`repository:NAME:pull`, or the catalog's).
pub(super) fn token_scope(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v2/")?;
    if rest == "_catalog" {
        return Some("registry:catalog:*".into());
    }
    let end = ["/manifests/", "/blobs/", "/tags/list", "/referrers/"]
        .iter()
        .filter_map(|m| rest.rfind(m))
        .max()?;
    Some(format!("repository:{}:pull", &rest[..end]))
}

impl FaultyRegistry {
    pub(super) fn issue_token<B>(&mut self, req: &Request<B>, service: &str) -> Reply {
        let q = req.uri().query().unwrap_or("");
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect();
        let svc_ok = pairs.iter().any(|(k, v)| k == "service" && v == service);
        // a pull scope; or none at all, as a login asks (`docker login`, `ocireg login`)
        let scopes: Vec<&String> = pairs
            .iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v)
            .collect();
        let scope_ok = scopes.is_empty()
            || scopes
                .iter()
                .any(|v| v.starts_with("repository:") && v.ends_with(":pull"));
        if !svc_ok || !scope_ok {
            return simple(400, &[]);
        }
        self.issue_token_to(service)
    }

    pub(super) fn issue_token_to(&mut self, _service: &str) -> Reply {
        self.issued += 1;
        let issued_at = self
            .token_issued_ago
            .map(|ago| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                format!(r#","issued_at":"{}""#, rfc3339(now.saturating_sub(ago)))
            })
            .unwrap_or_default();
        let body = format!(
            r#"{{"token":"tok-{}","expires_in":300{issued_at}}}"#,
            self.issued
        );
        let head = Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, body.len())
            .body(())
            .expect("valid headers");
        Reply::new(head, Bytes::from(body))
    }

    /// Tokens issued so far.
    pub fn tokens_issued(&self) -> u32 {
        self.issued
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch (the civil calendar from days,
/// after Howard Hinnant's date algorithms).
fn rfc3339(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod rfc3339_tests {
    #[test]
    fn known_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_709_206_496), "2024-02-29T11:34:56Z");
        let t = 1_704_067_200;
        assert_eq!(super::rfc3339(t), "2024-01-01T00:00:00Z");
        assert_eq!(
            ocireg_core::auth::parse_rfc3339(&super::rfc3339(t + 12_345)),
            Some(t + 12_345)
        );
    }
}
