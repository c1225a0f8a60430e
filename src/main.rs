//! The `jitffi` command line: `call`, `explain`, `symbols`, `bench`, `demo`.
//!
//! Every error is one line on stderr naming what and where, with exit code 2.

mod cli;

fn main() {
    // Die quietly on a closed pipe (`jitffi symbols LIB | head`), as C
    // tools do, instead of panicking in println!.
    // SAFETY: setting a signal disposition to the default at start-up,
    // before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    match cli::run(&args) {
        Ok(()) => {}
        Err(msg) => {
            eprintln!("jitffi: {msg}");
            std::process::exit(2);
        }
    }
}
