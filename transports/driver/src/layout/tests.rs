//! Tests of the layout writer.

use super::*;

fn descriptor(content: &[u8]) -> Descriptor {
    Descriptor::new(
        ocireg_core::manifest::OCI_MANIFEST,
        Digest::sha256(content),
        content.len() as u64,
    )
}

fn commit(root: &Path, tag: Option<&str>, content: &[u8]) {
    let mut w = LayoutWriter::create(root, tag.map(str::to_string)).unwrap();
    w.resolved = Some(descriptor(content));
    w.commit().unwrap();
}

/// (ref.name, digest) of every entry, in order.
fn entries(root: &Path) -> Vec<(Option<String>, String)> {
    let index: Value = serde_json::from_slice(&fs::read(root.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["annotations"][REF_NAME].as_str().map(str::to_string),
                m["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn index_json_merges_tags_and_keeps_what_other_tools_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let d = |c: &[u8]| Digest::sha256(c).to_string();
    // an index written by another tool: an entry with foreign annotations only, and
    // a top-level field of its own
    commit(root, None, b"seed");
    let mut index: Value =
        serde_json::from_slice(&fs::read(root.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["annotations"] = json!({"vendor.example/owner": "someone"});
    index["annotations"] = json!({"vendor.example/created": "2026"});
    fs::write(root.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();

    commit(root, Some("v1"), b"one");
    commit(root, Some("v2"), b"two");
    // a tag moves: its old entry goes, the other tag stays
    commit(root, Some("v1"), b"three");
    // an untagged pull of a digest already listed untagged replaces that entry only
    commit(root, None, b"four");
    commit(root, None, b"four");
    assert_eq!(
        entries(root),
        vec![
            (None, d(b"seed")),
            (Some("v2".into()), d(b"two")),
            (Some("v1".into()), d(b"three")),
            (None, d(b"four")),
        ]
    );
    let index: Value = serde_json::from_slice(&fs::read(root.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["annotations"]["vendor.example/created"], "2026");
    assert_eq!(
        index["manifests"][0]["annotations"]["vendor.example/owner"],
        "someone"
    );
    assert_eq!(index["schemaVersion"], 2);
    // and what is left is a valid index for the reader
    assert_eq!(read_index(root).unwrap().len(), 4);
    // no temporary file is left behind
    let stray: Vec<_> = fs::read_dir(root)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(stray.is_empty());
}

/// A blob's shared partial file replaced by another process between this pull's lock and
/// its rename (the name now points at another file): nothing is moved into `blobs/`,
/// and the error says why; the file this pull wrote is named when it is still there.
#[test]
fn a_partial_file_replaced_under_the_pull_is_not_named() {
    use super::disk::{name_blob, Ingest, Open};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("ingest")).unwrap();
    fs::create_dir_all(root.join("blobs/sha256")).unwrap();
    let content = b"verified bytes";
    let digest = Digest::sha256(content);
    let open = |root: &Path| {
        let path = root.join("ingest/blob.partial");
        let mut file = fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut file, content).unwrap();
        let slot = crate::writer::Slot::new(&file, false).unwrap();
        Open {
            ingest: Ingest::Shared { file, path },
            final_path: blob_path(root, &digest),
            slot,
        }
    };
    // replaced: another file of the same size now has the name
    let o = open(root);
    let other = root.join("ingest/other");
    fs::write(&other, b"planted bytes!").unwrap();
    fs::rename(&other, root.join("ingest/blob.partial")).unwrap();
    let e = name_blob(o, content.len() as u64, false).unwrap_err();
    assert!(e.to_string().contains("was replaced"), "{e}");
    assert!(!blob_path(root, &digest).exists());
    // still the file written: named
    let o = open(root);
    name_blob(o, content.len() as u64, false).unwrap();
    assert_eq!(fs::read(blob_path(root, &digest)).unwrap(), content);
}
