//! The `jitffi` command line: `call`, `explain`, `symbols`, `bench`, `demo`.
//!
//! Every error is one line on stderr naming what and where, with exit code 2.

mod cli;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match cli::run(&args) {
        Ok(()) => {}
        Err(msg) => {
            eprintln!("jitffi: {msg}");
            std::process::exit(2);
        }
    }
}
