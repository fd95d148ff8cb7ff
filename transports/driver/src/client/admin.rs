//! Administration: the digest a reference names, more tags for a manifest, deletes
//! (a manifest, a tag alone, a blob) and checking credentials before they are stored.
//! Reads (the digest) go through mirrors; writes go to the registry itself.

use ocireg_core::{Credentials, Descriptor, Digest, Event, Machine, Reference};

use super::hosts::Read;
use super::pull::at_digest;
use super::{parse, Client, Collect};
use crate::Error;

impl Client {
    /// The descriptor (digest, media type, size) of the manifest `reference` names: a
    /// `HEAD`, then a `GET` where the registry does not say its digest.
    pub async fn digest(&self, reference: &str) -> Result<Descriptor, Error> {
        let reference = parse(reference)?;
        let events = self
            .events_through(&reference, Read::AsWritten, Machine::resolve)
            .await?;
        events
            .into_iter()
            .find_map(|e| match e {
                Event::Resolved { descriptor } => Some(descriptor),
                _ => None,
            })
            .ok_or(Error::Internal("a resolve ended with no descriptor"))
    }

    /// Puts the manifest `reference` names under each of `tags` in its repository (no
    /// blob moves); its digest.
    pub async fn tag(&self, reference: &str, tags: &[String]) -> Result<Digest, Error> {
        let reference = parse(reference)?;
        for t in tags {
            ocireg_core::reference::validate_tag(t)
                .map_err(|e| Error::Registry(ocireg_core::Error::Reference(e)))?;
        }
        let mut tag = Machine::tag(
            self.config_for(&reference)?,
            reference,
            tags.to_vec(),
            self.runtime.now(),
        );
        let mut seen = Collect::default();
        self.run(&mut tag, &*self.transport.clone(), &mut seen)
            .await?;
        seen.0
            .into_iter()
            .find_map(|e| match e {
                Event::ManifestPushed { digest, .. } => Some(digest),
                _ => None,
            })
            .ok_or(Error::Internal("a tag ended with no manifest put"))
    }

    /// Deletes the manifest `reference` names (a tag is resolved to its digest first,
    /// and the manifest it points to is deleted; a caller asks before). A manifest that
    /// refers to another is taken out of that one's referrers tag where the registry has
    /// no referrers API; what refers to the deleted manifest is left alone. Its digest.
    pub async fn delete_manifest(&self, reference: &str) -> Result<Digest, Error> {
        let written = parse(reference)?;
        let digest = match written.digest() {
            Some(d) => d.clone(),
            None => self.digest(reference).await?.digest,
        };
        let at = at_digest(&written, &digest)?;
        let mut delete = Machine::delete_manifest(self.config_for(&at)?, at, self.runtime.now());
        self.run(&mut delete, &*self.transport.clone(), &mut ())
            .await?;
        Ok(digest)
    }

    /// Deletes the tag `reference` names, not the manifest it points to (OCI 1.1; many
    /// registries refuse it).
    pub async fn delete_tag(&self, reference: &str) -> Result<(), Error> {
        let reference = parse(reference)?;
        let mut delete =
            Machine::delete_tag(self.config_for(&reference)?, reference, self.runtime.now());
        self.run(&mut delete, &*self.transport.clone(), &mut ())
            .await
    }

    /// Deletes the blob `reference` names by digest (`repo@sha256:…`).
    pub async fn delete_blob(&self, reference: &str) -> Result<(), Error> {
        let reference = parse(reference)?;
        let mut delete =
            Machine::delete_blob(self.config_for(&reference)?, reference, self.runtime.now());
        self.run(&mut delete, &*self.transport.clone(), &mut ())
            .await
    }

    /// Logs in: checks `credentials` against `registry` ([`Client::check_credentials`]),
    /// then stores them where docker, podman, skopeo and crane find them (this client's
    /// Docker `config.json`, or the helper it names). Where they went; `None` when the
    /// registry needs none (nothing is stored). Rejected credentials store nothing.
    pub async fn login(
        &self,
        registry: &str,
        credentials: Credentials,
    ) -> Result<Option<crate::credentials::Stored>, Error> {
        if !self
            .check_credentials(registry, credentials.clone())
            .await?
        {
            return Ok(None);
        }
        let path = self.docker_config_path()?;
        crate::credentials::store(path, registry, &credentials, None)
            .map(Some)
            .map_err(|e| Error::Credentials(e.to_string()))
    }

    /// Logs out: erases `registry`'s stored credentials (its helper's, and its entry in
    /// this client's Docker `config.json`); whether there were any.
    pub fn logout(&self, registry: &str) -> Result<bool, Error> {
        let path = self.docker_config_path()?;
        crate::credentials::erase(path, registry, None)
            .map_err(|e| Error::Credentials(e.to_string()))
    }

    /// Checks `credentials` against `registry` (`host[:port]`): its API root, after the
    /// authentication it asks for (a token where it uses one). Whether it asked for any
    /// (false: it answers anyone, and the credentials were not needed); rejected
    /// credentials are an [`ErrorKind::Unauthorized`](ocireg_core::ErrorKind) error.
    pub async fn check_credentials(
        &self,
        registry: &str,
        credentials: Credentials,
    ) -> Result<bool, Error> {
        let root = Reference::registry_root(registry)
            .map_err(|e| Error::Registry(ocireg_core::Error::Reference(e)))?;
        let config = ocireg_core::Config {
            credentials,
            ..self.config.clone()
        };
        let mut check = Machine::check_credentials(config, root, self.runtime.now());
        let mut seen = Collect::default();
        self.run(&mut check, &*self.transport.clone(), &mut seen)
            .await?;
        seen.0
            .into_iter()
            .find_map(|e| match e {
                Event::CredentialsChecked { needed } => Some(needed),
                _ => None,
            })
            .ok_or(Error::Internal("a check ended with no answer"))
    }
}
