//! The chaos suite (`make test-chaos`).
//!
//! `chaos run` starts a real 3-node cluster, creates an R3 station, starts a
//! producer process and two members of one consumer group (in Rust, or in
//! Python with `--lang python`), and breaks things while they work: SIGKILL
//! each node in turn and start it again, SIGSTOP a node for longer than
//! `ack_wait`, cut every client connection, SIGKILL a member and start it
//! again. Every process writes its history as JSON lines; `check.py`, which
//! knows nothing of jetstation's API, judges them.
//!
//! `chaos produce` and `chaos consume` are the Rust workers; their settings
//! come from `CHAOS_*` environment variables set by `chaos run`.

mod orchestrate;
mod workers;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = match args.first().map(String::as_str) {
        Some("run") => runtime.block_on(orchestrate::run(&args[1..])),
        Some("produce") => runtime.block_on(workers::produce()),
        Some("consume") => runtime.block_on(workers::consume()),
        _ => {
            eprintln!(
                "usage: chaos run [--lang rust|python] [--long] [--out DIR]\n       \
                 chaos produce | chaos consume   (workers, configured by CHAOS_* variables)"
            );
            2
        }
    };
    std::process::exit(code);
}
