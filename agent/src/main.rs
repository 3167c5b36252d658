//! `podiam` binary: see [`podiam::cli`].
fn main() -> std::process::ExitCode {
    podiam::cli::main()
}
