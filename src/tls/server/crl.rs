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
use x509_parser::asn1_rs::{Any, FromDer as _, Oid, Tag};
use x509_parser::oid_registry::{
    OID_X509_COMMON_NAME, OID_X509_COUNTRY_NAME, OID_X509_LOCALITY_NAME,
    OID_X509_ORGANIZATION_NAME, OID_X509_ORGANIZATIONAL_UNIT, OID_X509_STATE_OR_PROVINCE_NAME,
};
use x509_parser::prelude::{CertificateRevocationList, RelativeDistinguishedName, X509Error};

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
/// is not public, so the list is split into its signed parts here (by
/// x509-parser) and given to webpki's public key check with the
/// algorithms the verifier uses (the provider's), the first one fitting
/// both the list's algorithm and the CA's key deciding, as in webpki.
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
        let signed = Signed::from_der(crl)
            .map_err(|e| format!("{}: {numbered} is malformed: {e}", file()))?;
        lists.push((numbered, list, signed));
    }

    // A handshake looks a CA's list up by the issuer's name and takes the
    // first: a second list of that name (an older one left in, or the
    // list of another CA of the same name, a key rollover) is never
    // used, and the clients it was for would be refused.
    for (later, (numbered, list, _)) in lists.iter().enumerate() {
        if let Some((first, _, _)) = lists[..later]
            .iter()
            .find(|(_, earlier, _)| earlier.issuer() == list.issuer())
        {
            return Err(format!(
                "{}: {first} and {numbered} both name {} as their issuer: a handshake only ever uses the first list of a name, so keep one list per issuer (two CAs of one name need their own names)",
                file(),
                quoted(list.issuer())
            ));
        }
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
        // list needs to be signed by one of them (and, above, be the only
        // list of that name: both CAs' clients are checked against it).
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
    match readable_name(name) {
        Some(name) => format!("`{name}`"),
        None => "(a name with no common attribute)".to_owned(),
    }
}

/// The attributes shown, with openssl's labels.
static SHOWN: [(Oid<'static>, &str); 6] = [
    (OID_X509_COMMON_NAME, "CN"),
    (OID_X509_ORGANIZATION_NAME, "O"),
    (OID_X509_ORGANIZATIONAL_UNIT, "OU"),
    (OID_X509_LOCALITY_NAME, "L"),
    (OID_X509_STATE_OR_PROVINCE_NAME, "ST"),
    (OID_X509_COUNTRY_NAME, "C"),
];

/// A distinguished name (the contents of its `SEQUENCE`, as webpki gives
/// subjects and issuers) in `openssl x509 -subject`'s order and form
/// (`C=DE, O=Example, CN=clients`), with the common attributes only;
/// `None` when it has none of them in a string type read here, or does
/// not read as a name. x509-parser's `Display` for names shows every
/// attribute, control characters as they are: not for an error message.
fn readable_name(mut name: &[u8]) -> Option<String> {
    let mut shown = Vec::new();
    while !name.is_empty() {
        let (rest, relative) = RelativeDistinguishedName::from_der(name).ok()?;
        name = rest;
        for attribute in relative.iter() {
            let label = SHOWN.iter().find(|(oid, _)| oid == attribute.attr_type());
            let value = text(attribute.attr_value());
            if let (Some((_, label)), Some(value)) = (label, value) {
                shown.push(format!("{label}={}", value.escape_debug()));
            }
        }
    }
    (!shown.is_empty()).then(|| shown.join(", "))
}

/// The text of a string value: UTF8String, PrintableString, IA5String or
/// BMPString.
fn text(value: &Any<'_>) -> Option<String> {
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String => {
            String::from_utf8(value.data.to_vec()).ok()
        }
        // asn1-rs reads a last odd byte as a character of its own.
        Tag::BmpString if value.data.len().is_multiple_of(2) => {
            value.as_bmpstring().ok().map(|text| text.string())
        }
        _ => None,
    }
}

/// A list as its signature check needs it: read by x509-parser, as webpki
/// reads it in the handshake but keeps to itself.
struct Signed<'a> {
    /// The list; its `tbs_cert_list` is the signed part (tag and length
    /// included), its `signature_value` the signature.
    list: CertificateRevocationList<'a>,
    /// The contents of the signature's `AlgorithmIdentifier`, which is what
    /// `SignatureVerificationAlgorithm::signature_alg_id` holds. x509-parser
    /// keeps its OID and parameters only, and would pass over anything
    /// after them that makes webpki's comparison of the bytes fail.
    algorithm: &'a [u8],
}

impl<'a> Signed<'a> {
    /// `der` read, or why it cannot be.
    fn from_der(der: &'a [u8]) -> Result<Self, X509Error> {
        let (_, list) = CertificateRevocationList::from_der(der)?;
        // No algorithm makes a signature with unused bits.
        if list.signature_value.unused_bits != 0 {
            return Err(X509Error::InvalidSignatureValue);
        }
        // The algorithm identifier follows the signed part.
        let (_, whole) = Any::from_der(der)?;
        let after = whole
            .data
            .get(list.tbs_cert_list.as_ref().len()..)
            .ok_or(X509Error::InvalidAlgorithmIdentifier)?;
        let (_, algorithm) = Any::from_der(after)?;
        Ok(Signed {
            list,
            algorithm: algorithm.data,
        })
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
    let data = signed.list.tbs_cert_list.as_ref();
    let signature = &signed.list.signature_value.data;
    let mut unfit = false;
    for algorithm in algorithms
        .iter()
        .filter(|algorithm| algorithm.signature_alg_id().as_ref() == signed.algorithm)
    {
        match key.verify_signature(*algorithm, data, signature) {
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

#[cfg(test)]
mod tests {
    use rcgen::{DnType, DnValue, KeyPair, PublicKeyData as _, SignatureAlgorithm};

    use super::*;

    /// The subject of a certificate rcgen makes, as webpki gives it.
    fn subject(dn: &[(DnType, DnValue)]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (kind, value) in dn {
            params.distinguished_name.push(kind.clone(), value.clone());
        }
        let cert = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
        let der = CertificateDer::from(cert.der().to_vec());
        webpki::anchor_from_trusted_cert(&der)
            .unwrap()
            .subject
            .as_ref()
            .to_vec()
    }

    #[test]
    fn names_read_as_openssl_prints_them() {
        let utf8 = |text: &str| DnValue::Utf8String(text.to_owned());
        let name = subject(&[
            (DnType::CountryName, utf8("DE")),
            (DnType::OrganizationName, utf8("Ex`ample")),
            (
                DnType::OrganizationalUnitName,
                DnValue::BmpString("Kunden ü".try_into().unwrap()),
            ),
            (DnType::CommonName, utf8("clients\n")),
        ]);
        assert_eq!(
            readable_name(&name).as_deref(),
            Some("C=DE, O=Ex`ample, OU=Kunden ü, CN=clients\\n")
        );
        // No attribute read here: no name.
        let other = subject(&[(DnType::CustomDnType(vec![1, 2, 3, 4]), utf8("x"))]);
        assert_eq!(readable_name(&other), None);
        assert_eq!(readable_name(&[]), None);
        assert_eq!(readable_name(&[0x31, 0x05]), None);
    }

    /// A list signed by a new key of the kind `algorithm`, and that key's
    /// public part.
    fn list(algorithm: &'static SignatureAlgorithm) -> (Vec<u8>, SubjectPublicKeyInfoDer<'static>) {
        let key = KeyPair::generate_for(algorithm).unwrap();
        let spki = SubjectPublicKeyInfoDer::from(key.subject_public_key_info());
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "CA");
        let issuer = rcgen::Issuer::new(params, key);
        let list = rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2024, 1, 1),
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: Vec::new(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        (list.signed_by(&issuer).unwrap().der().to_vec(), spki)
    }

    #[test]
    fn lists_split_into_what_rustls_verifies() {
        let algorithms = rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .all;
        // ecdsa-with-SHA256 and Ed25519, as `signature_alg_id` holds them.
        let ecdsa: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
        let ed25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
        for (kind, id) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, ecdsa),
            (&rcgen::PKCS_ED25519, ed25519),
        ] {
            let (der, key) = list(kind);
            let signed = Signed::from_der(&der).unwrap();
            assert_eq!(signed.algorithm, id);
            assert!(verify(&signed, &key, algorithms).is_ok());
            let (_, other) = list(kind);
            assert!(matches!(
                verify(&signed, &other, algorithms),
                Err(Unverified::OtherKey)
            ));
            for cut in [0, 1, 2, der.len() / 2, der.len() - 1] {
                assert!(Signed::from_der(&der[..cut]).is_err(), "cut at {cut}");
            }
        }
    }
}
