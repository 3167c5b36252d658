//! `cargo xtask gen-crd`: writes the PodIdentityAssociation CRD rendered from the Rust type.
use crate::util::{self, sh};

pub fn run() -> anyhow::Result<()> {
    sh(util::cargo()
        .args([
            "run", "--quiet", "-p", "podiam", "--", "gen-crd", "--output",
        ])
        .arg(util::root().join("deploy/crd/podidentityassociation.yaml")))
}
