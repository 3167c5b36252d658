//! The `podiam` command line, built inside the tests package so integration tests can run a
//! fresh binary (cargo builds a package's bins before its integration tests). Identical to
//! `agent/src/main.rs`.
fn main() -> std::process::ExitCode {
    podiam::cli::main()
}
