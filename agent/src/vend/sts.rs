//! The [`Sts`] trait: one `sts:AssumeRole` call, so the cache can be tested with a fake.
use super::Credentials;
use super::error::StsError;
use super::session::SessionTag;

/// Parameters of one `sts:AssumeRole` call (STS API `AssumeRole`, version 2011-06-15).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssumeRoleRequest {
    /// `RoleArn`: full role ARN.
    pub role_arn: String,
    /// `RoleSessionName`: 2–64 chars `[\w+=,.@-]` (see [`super::session_name`]).
    pub session_name: String,
    /// `ExternalId`, when the mapping has one.
    pub external_id: Option<String>,
    /// `DurationSeconds`: 900–43200.
    pub duration_seconds: u32,
    /// `Tags` (session tags); empty when the role's mapping opts out.
    pub tags: Vec<SessionTag>,
    /// `TransitiveTagKeys`: the keys of `tags` that pass on through role chaining.
    pub transitive_tag_keys: Vec<String>,
}

/// Calls `sts:AssumeRole`. Implemented by [`super::AwsSts`] (aws-sdk-sts) and by test fakes.
///
/// Returned [`Credentials`] carry STS's `Expiration`, the account ID of the assumed role
/// (from `AssumedRoleUser.Arn`, else from the role ARN) and `last_updated` = time of the call.
#[async_trait::async_trait]
pub trait Sts: Send + Sync + 'static {
    /// Calls `sts:AssumeRole` once (no caching, no retries beyond the SDK's own).
    async fn assume_role(&self, req: &AssumeRoleRequest) -> Result<Credentials, StsError>;
}

/// The 12-digit account ID in an ARN (`arn:<partition>:<service>:<region>:<account>:…`),
/// if present and well-formed.
pub fn account_from_arn(arn: &str) -> Option<String> {
    let account = arn.split(':').nth(4)?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
        .then(|| account.to_string())
}

#[cfg(test)]
mod tests {
    use super::account_from_arn;

    #[test]
    fn account_ids() {
        assert_eq!(
            account_from_arn("arn:aws:sts::123456789012:assumed-role/r/s").as_deref(),
            Some("123456789012")
        );
        assert_eq!(
            account_from_arn("arn:aws:iam::123456789012:role/path/r").as_deref(),
            Some("123456789012")
        );
        assert_eq!(account_from_arn("arn:aws:iam::12345:role/r"), None);
        assert_eq!(account_from_arn("not-an-arn"), None);
    }
}
