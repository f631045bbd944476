//! The `maribank-etl` binary: everything lives in the library; see `cli`.

fn main() -> std::process::ExitCode {
    maribank_etl::cli::main()
}
