//! Reads the first layer of an image as a stream, verified as it ends, and prints its
//! size and digest: `cargo run --example read_layer -- docker.io/library/alpine:3.20`.
use futures::TryStreamExt;
use ocireg_tokio::Manifest;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let image = std::env::args().nth(1).ok_or("usage: read_layer IMAGE")?;
    let client = ocireg_tokio::Client::new()?;
    let Manifest::Image(m) = client.manifest(&image).await?.manifest else {
        return Err("an index: name one platform's manifest".into());
    };
    let mut layer = client.blob(&image, m.layers.first().ok_or("no layer")?.clone())?;
    let size = (&mut layer)
        .try_fold(0, |n, c| async move { Ok(n + c.len()) })
        .await?;
    println!("{size} bytes, {}", layer.descriptor().digest);
    Ok(())
}
