//! The `maribank-etl` binary: everything lives in the library; see `cli`.

fn main() -> std::process::ExitCode {
    maribank_etl::load::budget::cap_malloc_arenas();
    maribank_etl::cli::main()
}
