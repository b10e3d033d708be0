//! Deletes every stream of a server: `clear <url>`. Run by
//! `scripts/bench-produce.sh` after each client's run, so every run starts
//! on an empty store: at 4 KiB one run stores about 400 MB, and the streams
//! the earlier clients of a round left behind (gigabytes of dirty pages for
//! the kernel to write back) slowed whichever client ran after them.

use futures::TryStreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1).ok_or("usage: clear <url>")?;
    let js = async_nats::jetstream::new(async_nats::connect(&url).await?);
    let names: Vec<String> = js.stream_names().try_collect().await?;
    for name in names {
        js.delete_stream(&name).await?;
    }
    Ok(())
}
