//! Wire formats shared by the IMDS and container-credentials surfaces.
use std::time::SystemTime;

use time::OffsetDateTime;
use time::macros::format_description;

/// Formats a time as `YYYY-MM-DDTHH:MM:SSZ` (UTC, second precision), the layout real IMDS
/// uses and botocore parses strictly (`%Y-%m-%dT%H:%M:%SZ`). Sub-second parts are truncated.
/// Times outside years 0000–9999 are clamped to that range.
pub fn iso8601_seconds(t: SystemTime) -> String {
    let dt = OffsetDateTime::from(t);
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    dt.format(&fmt).unwrap_or_else(|_| {
        if dt.year() < 0 {
            "0000-01-01T00:00:00Z".to_owned()
        } else {
            "9999-12-31T23:59:59Z".to_owned()
        }
    })
}

/// The 12-digit account ID field of an ARN (`arn:aws:iam::123456789012:role/x` →
/// `123456789012`), if it has one.
pub fn arn_account(arn: &str) -> Option<&str> {
    let acct = arn.split(':').nth(4)?;
    (acct.len() == 12 && acct.bytes().all(|b| b.is_ascii_digit())).then_some(acct)
}

/// Seconds since the Unix epoch (0 for times before it).
pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_495_033_794_999);
        assert_eq!(iso8601_seconds(t), "2017-05-17T15:09:54Z");
        assert_eq!(
            arn_account("arn:aws:iam::123456789012:role/a/b"),
            Some("123456789012")
        );
        assert_eq!(arn_account("arn:aws:iam::12:role/a"), None);
        assert_eq!(arn_account("garbage"), None);
        assert_eq!(unix_seconds(t), 1_495_033_794);
    }
}
