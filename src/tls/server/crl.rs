//! Revocation lists for client certificates, checked against the client
//! CAs when the file is read. The verifier refuses a client whose status it
//! cannot tell, so a list signed by another key than its CA's, or a client
//! CA with no list, would refuse every client of that CA in the handshake,
//! said only at debug level; here it is an error naming the file instead.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, SignatureVerificationAlgorithm,
    SubjectPublicKeyInfoDer,
};
use webpki::{BorrowedCertRevocationList, CertRevocationList};

use crate::tls::der::{self, Signed};
use crate::tls::{pem_error, shown};

/// The lists read, for the verifier, and what loads with a warning.
#[derive(Debug)]
pub(super) struct Lists {
    pub(super) der: Vec<CertificateRevocationListDer<'static>>,
    pub(super) unlisted: Vec<Unlisted>,
}

/// A client CA with no list that loads all the same: it issued another
/// client CA of the file, whose clients' chains end at that one and need
/// only its list. Clients whose chain reaches this CA otherwise are refused.
#[derive(Debug)]
pub(super) struct Unlisted {
    pub(super) file: PathBuf,
    /// This CA, as people read it.
    pub(super) ca: String,
    /// The CAs of the file it issued.
    pub(super) issued: String,
}

/// A client CA as the checks need it.
struct Ca {
    subject: Vec<u8>,
    issuer: Option<Vec<u8>>,
    key: SubjectPublicKeyInfoDer<'static>,
    /// Its name and place in `tls.client_ca_file`, for errors.
    shown: String,
}

/// Reads the lists in `pem` (the file `path`) and checks them against the
/// client CAs `cas` (the file `ca_path`): every list must parse, a list
/// naming a client CA as issuer must be signed by that CA's key, and every
/// client CA must have a list, unless it issued another client CA of the
/// file (then it is in [`Lists::unlisted`]).
///
/// The signature is checked as the handshake will: webpki's own check
/// is not public, so the list is split into its signed parts here and
/// given to webpki's public key check with the algorithms the verifier
/// uses (the provider's), the first one fitting both the list's algorithm
/// and the CA's key deciding, as in webpki.
pub(super) fn load(
    path: &Path,
    pem: &[u8],
    ca_path: &Path,
    cas: &[CertificateDer<'_>],
    algorithms: &[&dyn SignatureVerificationAlgorithm],
) -> Result<Lists, String> {
    let file = || format!("tls.client_crl_file {}", shown(path));
    let crls = CertificateRevocationListDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not PEM: {}", file(), pem_error(&e)))?;
    if crls.is_empty() {
        // An empty file is more likely a mistake than a CA that revoked
        // nothing, whose list still names it as issuer.
        return Err(format!(
            "{}: no revocation list in it (a PEM `BEGIN X509 CRL` block is expected)",
            file()
        ));
    }
    let mut lists = Vec::with_capacity(crls.len());
    for (n, crl) in crls.iter().enumerate() {
        let numbered = format!("revocation list {} of {}", n + 1, crls.len());
        let list = BorrowedCertRevocationList::from_der(crl)
            .map(CertRevocationList::from)
            .map_err(|e| format!("{}: {numbered} is malformed: {e}", file()))?;
        let signed =
            der::signed(crl).ok_or_else(|| format!("{}: {numbered} is malformed", file()))?;
        lists.push((numbered, list, signed));
    }

    let cas = client_cas(ca_path, cas)?;
    let mut listed = vec![false; cas.len()];
    for (numbered, list, signed) in &lists {
        // Limitation: a list whose issuer is not a client CA is kept
        // unchecked. It may be an intermediate CA's, sent by clients in
        // their chains, whose key the gateway only sees in a handshake; a
        // wrong one refuses that intermediate's clients there. And a list
        // with an issuing distribution point (one part of a CA's
        // certificates) counts as its CA's list whatever part it covers:
        // which clients fall in it shows only in their certificates.
        let (mut verified, mut failed) = (false, None);
        for (index, ca) in cas.iter().enumerate() {
            if ca.subject != list.issuer() {
                continue;
            }
            match verify(signed, &ca.key, algorithms) {
                Ok(()) => {
                    listed[index] = true;
                    verified = true;
                }
                Err(why) => {
                    failed.get_or_insert((ca, why));
                }
            }
        }
        // Two client CAs may share a name (a CA's old and new key): the
        // list needs to be signed by one of them. The first list naming a
        // CA is the one the handshake takes, so each one must pass.
        if let (false, Some((ca, why))) = (verified, failed) {
            return Err(format!(
                "{}: {numbered} names the client CA {} as its issuer but is {}: every client of that CA would be refused",
                file(),
                ca.shown,
                why.said()
            ));
        }
    }

    let mut unlisted = Vec::new();
    for (index, ca) in cas.iter().enumerate() {
        if listed[index] {
            continue;
        }
        let issued: Vec<&str> = cas
            .iter()
            .enumerate()
            .filter(|(other, issued)| {
                *other != index && issued.issuer.as_deref() == Some(ca.subject.as_slice())
            })
            .map(|(_, issued)| issued.shown.as_str())
            .collect();
        if issued.is_empty() {
            let mut issuers: Vec<String> = Vec::new();
            for (_, list, _) in &lists {
                let name = quoted(list.issuer());
                if !issuers.contains(&name) {
                    issuers.push(name);
                }
            }
            return Err(format!(
                "{}: no list for the client CA {}: its clients would all be refused (the file has lists for {})",
                file(),
                ca.shown,
                issuers.join(", ")
            ));
        }
        unlisted.push(Unlisted {
            file: path.to_owned(),
            ca: ca.shown.clone(),
            issued: issued.join(", "),
        });
    }
    Ok(Lists {
        der: crls,
        unlisted,
    })
}

/// The client CAs, as the checks need them.
fn client_cas(path: &Path, cas: &[CertificateDer<'_>]) -> Result<Vec<Ca>, String> {
    let mut read = Vec::new();
    for (n, cert) in cas.iter().enumerate() {
        let place = format!(
            "(certificate {} of {} in tls.client_ca_file {})",
            n + 1,
            cas.len(),
            shown(path)
        );
        let anchor = webpki::anchor_from_trusted_cert(cert)
            .map_err(|e| format!("tls.client_ca_file {}: {e}", shown(path)))?;
        // Parsed only for its issuer; `None` for a v1 certificate, which
        // has no issuer webpki reads this way.
        let issuer = webpki::EndEntityCert::try_from(cert)
            .ok()
            .map(|cert| cert.issuer().to_vec());
        read.push(Ca {
            subject: anchor.subject.as_ref().to_vec(),
            issuer,
            key: webpki::spki_for_anchor(&anchor),
            shown: format!("{} {place}", quoted(anchor.subject.as_ref())),
        });
    }
    Ok(read)
}

/// A name as people read it, quoted; said to be unreadable when it has
/// none of the common attributes.
fn quoted(name: &[u8]) -> String {
    match der::readable_name(name) {
        Some(name) => format!("`{name}`"),
        None => "(a name with no common attribute)".to_owned(),
    }
}

/// Why a list's signature does not verify with a CA's key.
#[derive(Debug)]
enum Unverified {
    /// A key of the same type, but another one.
    OtherKey,
    /// An algorithm that does not fit the CA's type of key.
    OtherKindOfKey,
    /// An algorithm the provider does not verify.
    Algorithm,
    /// A CA key webpki does not read.
    UnreadableKey,
}

impl Unverified {
    fn said(&self) -> &'static str {
        match self {
            Unverified::OtherKey => "signed by another key than that CA's",
            Unverified::OtherKindOfKey => {
                "signed by another key than that CA's (a key of another type: the list's signature algorithm does not fit the CA's key)"
            }
            Unverified::Algorithm => {
                "signed with an algorithm the gateway cannot verify, so the handshake cannot check it either"
            }
            Unverified::UnreadableKey => {
                "not checkable against that CA's public key, which cannot be read, so the handshake cannot check it either"
            }
        }
    }
}

/// Checks `signed` against `key`, as webpki checks a list in the
/// handshake.
fn verify(
    signed: &Signed<'_>,
    key: &SubjectPublicKeyInfoDer<'_>,
    algorithms: &[&dyn SignatureVerificationAlgorithm],
) -> Result<(), Unverified> {
    let key = webpki::RawPublicKeyEntity::try_from(key).map_err(|_| Unverified::UnreadableKey)?;
    let mut unfit = false;
    for algorithm in algorithms
        .iter()
        .filter(|algorithm| algorithm.signature_alg_id().as_ref() == signed.algorithm)
    {
        match key.verify_signature(*algorithm, signed.data, signed.signature) {
            Ok(()) => return Ok(()),
            Err(webpki::Error::UnsupportedSignatureAlgorithmForPublicKeyContext(_)) => {
                unfit = true;
            }
            Err(_) => return Err(Unverified::OtherKey),
        }
    }
    Err(if unfit {
        Unverified::OtherKindOfKey
    } else {
        Unverified::Algorithm
    })
}
