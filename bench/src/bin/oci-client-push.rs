//! The peer for pushes: pushes the image of an OCI layout with the `oci-client` crate
//! (which holds every blob in memory, as its `push` API takes them).
//!
//! Usage: `oci-client-push LAYOUT REFERENCE` (plain http)

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

fn blob(layout: &std::path::Path, digest: &str) -> Vec<u8> {
    let (alg, hex) = digest.split_once(':').expect("digest");
    std::fs::read(layout.join("blobs").join(alg).join(hex)).expect("blob in the layout")
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let layout = std::path::PathBuf::from(&args[1]);
    let reference: Reference = args[2].parse().expect("reference");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let top = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest: serde_json::Value = serde_json::from_slice(&blob(&layout, &top)).unwrap();
    let config = &manifest["config"];
    let config = Config::new(
        blob(&layout, config["digest"].as_str().unwrap()),
        config["mediaType"].as_str().unwrap().to_string(),
        None,
    );
    let layers: Vec<ImageLayer> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            ImageLayer::new(
                blob(&layout, l["digest"].as_str().unwrap()),
                l["mediaType"].as_str().unwrap().to_string(),
                None,
            )
        })
        .collect();
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    if let Err(e) = client
        .push(&reference, &layers, config, &RegistryAuth::Anonymous, None)
        .await
    {
        eprintln!("oci-client-push: {e}");
        std::process::exit(1);
    }
}
