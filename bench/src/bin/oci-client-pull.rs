//! The peer: pulls an image with the `oci-client` crate, streaming each blob with
//! `pull_blob` into a file, `CONCURRENCY` blobs at a time.
//!
//! Usage: `oci-client-pull REFERENCE DIR CONCURRENCY` (plain http; credentials from
//! `OCI_CLIENT_USER` and `OCI_CLIENT_PASSWORD` when both are set; https trusting the CA
//! file `OCI_CLIENT_CA` when set)

use futures::stream::{self, StreamExt};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (reference, dir, conc) = (
        &args[1],
        std::path::PathBuf::from(&args[2]),
        args[3].parse::<usize>().unwrap(),
    );
    let reference: Reference = reference.parse().expect("reference");
    // https trusting this CA when `OCI_CLIENT_CA` names one, else plain http
    let client = Client::new(match std::env::var("OCI_CLIENT_CA") {
        Ok(ca) => ClientConfig {
            protocol: ClientProtocol::Https,
            extra_root_certificates: vec![oci_client::client::Certificate {
                encoding: oci_client::client::CertificateEncoding::Pem,
                data: std::fs::read(ca).expect("the CA file"),
            }],
            ..Default::default()
        },
        Err(_) => ClientConfig {
            protocol: ClientProtocol::Http,
            ..Default::default()
        },
    });
    let auth = match (
        std::env::var("OCI_CLIENT_USER"),
        std::env::var("OCI_CLIENT_PASSWORD"),
    ) {
        (Ok(u), Ok(p)) => RegistryAuth::Basic(u, p),
        _ => RegistryAuth::Anonymous,
    };
    let (manifest, _digest) = client
        .pull_image_manifest(&reference, &auth)
        .await
        .expect("manifest");
    std::fs::create_dir_all(&dir).unwrap();
    let mut blobs = vec![manifest.config.clone()];
    blobs.extend(manifest.layers.iter().cloned());
    let results: Vec<Result<(), String>> = stream::iter(blobs)
        .map(|d| {
            let (client, reference, dir) = (&client, &reference, &dir);
            async move {
                let path = dir.join(d.digest.replace(':', "-"));
                let mut f = tokio::fs::File::create(&path)
                    .await
                    .map_err(|e| e.to_string())?;
                client
                    .pull_blob(reference, &d, &mut f)
                    .await
                    .map_err(|e| e.to_string())
            }
        })
        .buffer_unordered(conc)
        .collect()
        .await;
    for r in results {
        if let Err(e) = r {
            eprintln!("oci-client-pull: {e}");
            std::process::exit(1);
        }
    }
}
