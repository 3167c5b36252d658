//! A Rust AWS SDK client for the end-to-end tests: resolves credentials with aws-config's
//! default chain (container credentials or IMDS, whatever the environment selects), calls
//! STS `GetCallerIdentity` (endpoint from `AWS_ENDPOINT_URL_STS`) and prints one JSON line
//! `{"Arn": "...", "AccessKeyId": "..."}`; exits 1 with the error on stderr otherwise.
use aws_config::BehaviorVersion;
use aws_credential_types::provider::ProvideCredentials as _;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let Some(provider) = config.credentials_provider() else {
        eprintln!("no credentials provider");
        return std::process::ExitCode::FAILURE;
    };
    let creds = match provider.provide_credentials().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("credentials: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let sts = aws_sdk_sts::Client::new(&config);
    match sts.get_caller_identity().send().await {
        Ok(out) => {
            println!(
                "{}",
                serde_json::json!({"Arn": out.arn(), "AccessKeyId": creds.access_key_id()})
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "GetCallerIdentity: {}",
                aws_sdk_sts::error::DisplayErrorContext(e)
            );
            std::process::ExitCode::FAILURE
        }
    }
}
