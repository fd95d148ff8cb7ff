//! `ocireg serve` (a layout as a registry, read-only unless `--allow-push`) and `ocireg demo` (a generated image
//! served in-process and pulled).

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use ocireg_core::{Config, Platform, Reference};
use ocireg_driver::server::load_into;
use ocireg_registry::{FaultyRegistry, Registry};

use crate::args::{DemoArgs, RuntimeChoice, ServeArgs};
use crate::progress;
use crate::setup::io_with_web_roots;

/// Binds `addr` and serves `registry` on the chosen runtime: the bound address, and the
/// future that serves until it is dropped.
async fn listen(
    rt: RuntimeChoice,
    addr: SocketAddr,
    registry: FaultyRegistry,
) -> Result<(SocketAddr, BoxFuture<'static, std::io::Result<()>>), String> {
    let registry = Arc::new(Mutex::new(registry));
    let listen_err = |e: std::io::Error| format!("listen on {addr}: {e}");
    Ok(match rt {
        RuntimeChoice::Tokio => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(listen_err)?;
            let bound = l.local_addr().map_err(listen_err)?;
            (bound, Box::pin(ocireg_tokio::serve(l, registry)))
        }
        RuntimeChoice::AsyncStd => {
            let l = async_std::net::TcpListener::bind(addr)
                .await
                .map_err(listen_err)?;
            let bound = l.local_addr().map_err(listen_err)?;
            (bound, Box::pin(ocireg_async_std::serve(l, registry)))
        }
        RuntimeChoice::Smol => {
            let l = smol::net::TcpListener::bind(addr)
                .await
                .map_err(listen_err)?;
            let bound = l.local_addr().map_err(listen_err)?;
            (bound, Box::pin(ocireg_smol::serve(l, registry)))
        }
    })
}

pub(crate) async fn cmd_serve(a: ServeArgs, rt: RuntimeChoice) -> Result<(), String> {
    let mut reg = Registry::new();
    let dir = a.dir.display();
    let is_layout = a.dir.join("index.json").is_file();
    let added = if is_layout {
        load_into(&a.dir, &mut reg, &a.repository).map_err(|e| format!("{dir}: {e}"))?
    } else if !a.dir.is_dir() {
        return Err(format!("{dir} does not exist (or is not a directory)"));
    } else if a.allow_push {
        // an empty registry that takes pushes
        Vec::new()
    } else {
        return Err(format!(
            "{dir} is not an OCI image layout (it has no index.json): pull an image into it \
             first (ocireg pull REF {dir}), or serve it empty with --allow-push"
        ));
    };
    let mut registry = FaultyRegistry::new(reg, vec![]);
    registry.read_only = !a.allow_push;
    let (addr, serving) = listen(rt, a.addr, registry).await?;
    // Whoever reads stdout may stop reading: the server keeps serving (no println!,
    // which panics on a closed pipe).
    let mut out = std::io::stdout();
    let _ = writeln!(out, "serving {} on http://{addr}", a.dir.display());
    for (repo, tag) in &added {
        let _ = match tag {
            Some(t) => writeln!(out, "  {addr}/{repo}:{t}"),
            None => writeln!(out, "  {addr}/{repo}@<digest>"),
        };
    }
    let _ = out.flush();
    serving.await.map_err(|e| e.to_string())
}

pub(crate) async fn cmd_demo(a: DemoArgs, rt: RuntimeChoice) -> Result<(), String> {
    let platform = Platform::host();
    let img = ocireg_registry::images::image(
        42,
        &[8 << 20, 1 << 20, 64 << 10, 3 << 20],
        &platform,
        false,
    );
    let mut reg = Registry::new();
    let digest = img.add_to(&mut reg, "demo/hello", Some("v1"));
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let (addr, serving) = listen(rt, loopback, FaultyRegistry::new(reg, vec![])).await?;
    println!(
        "demo: serving a generated {}-layer image (manifest {digest}) at http://{addr}/demo/hello:v1",
        img.layers.len()
    );
    let reference =
        Reference::parse(&format!("{addr}/demo/hello:v1")).map_err(|e| e.to_string())?;
    // The demo needs no credentials and never reads Docker's config.
    let io = io_with_web_roots(rt)?;
    let now = io.runtime.now();
    let cfg = Config {
        deadline: Some(ocireg_core::time::later(now, Duration::from_secs(120))),
        ..Config::default()
    };
    let client = ocireg_driver::client::Client::from_parts(io.transport, io.runtime)
        .config(cfg)
        .docker_config(None);
    let written = reference.to_string();
    let pull = crate::pull::pull_and_say(
        &client,
        None,
        &written,
        None,
        crate::pull::Dest::dir(&a.dir),
        progress::Mode::Auto.resolve(),
    );
    // The server runs beside the pull on this task, and stops with it.
    let summary = match futures::future::select(serving, Box::pin(pull)).await {
        futures::future::Either::Left((stopped, _)) => {
            return Err(format!("the demo registry stopped: {stopped:?}"))
        }
        futures::future::Either::Right((pulled, _)) => pulled?.0,
    };
    println!("{summary}");
    println!(
        "demo: {} is an OCI image layout (oci-layout, index.json, blobs/sha256/…); pull it again and every blob is found already present.",
        a.dir.display()
    );
    Ok(())
}
