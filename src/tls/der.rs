//! Just enough DER reading to take a signed X.509 structure apart and to
//! show a distinguished name to a person. webpki has already parsed and
//! checked all it reads; webpki keeps these parts to itself.

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const BIT_STRING: u8 = 0x03;
const OID: u8 = 0x06;

/// One element at the start of some bytes.
struct Element<'a> {
    tag: u8,
    /// The element with its tag and length, as a signature covers it.
    whole: &'a [u8],
    contents: &'a [u8],
    /// What follows the element.
    rest: &'a [u8],
}

/// The element `input` starts with; `None` when it is not DER this module
/// can read (a high tag number, a length past 4 bytes, too few bytes).
fn element(input: &[u8]) -> Option<Element<'_>> {
    let (&tag, after) = input.split_first()?;
    // High tag numbers (`0x1f`) never occur in what is read here.
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, after) = after.split_first()?;
    let (len, after) = if first < 0x80 {
        (usize::from(first), after)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || after.len() < count {
            return None;
        }
        let (bytes, after) = after.split_at(count);
        let len = bytes
            .iter()
            .fold(0usize, |len, &byte| len << 8 | usize::from(byte));
        (len, after)
    };
    if after.len() < len {
        return None;
    }
    let header = input.len() - after.len();
    let (contents, rest) = after.split_at(len);
    Some(Element {
        tag,
        whole: &input[..header + len],
        contents,
        rest,
    })
}

/// The element `input` starts with, when its tag is `tag`.
fn expect(input: &[u8], tag: u8) -> Option<Element<'_>> {
    element(input).filter(|element| element.tag == tag)
}

/// The parts of a signed X.509 structure (a CRL, a certificate): `SEQUENCE
/// { tbs, signatureAlgorithm, signatureValue }`, split as rustls' signature
/// algorithms take them.
#[derive(Debug)]
pub(super) struct Signed<'a> {
    /// The to-be-signed element, tag and length included.
    pub(super) data: &'a [u8],
    /// The contents of the `AlgorithmIdentifier`, which is what
    /// `SignatureVerificationAlgorithm::signature_alg_id` holds.
    pub(super) algorithm: &'a [u8],
    /// The signature bits.
    pub(super) signature: &'a [u8],
}

/// `der` split into its signed parts; `None` when it is not a signed
/// structure, or its signature has unused bits (no algorithm makes those).
pub(super) fn signed(der: &[u8]) -> Option<Signed<'_>> {
    let outer = expect(der, SEQUENCE)?;
    let tbs = expect(outer.contents, SEQUENCE)?;
    let algorithm = expect(tbs.rest, SEQUENCE)?;
    let bits = expect(algorithm.rest, BIT_STRING)?;
    match bits.contents.split_first()? {
        (0, signature) => Some(Signed {
            data: tbs.whole,
            algorithm: algorithm.contents,
            signature,
        }),
        _ => None,
    }
}

/// The attributes shown, by their OID's contents (2.5.4.n).
const SHOWN: [(&[u8], &str); 6] = [
    (&[0x55, 0x04, 0x03], "CN"),
    (&[0x55, 0x04, 0x0a], "O"),
    (&[0x55, 0x04, 0x0b], "OU"),
    (&[0x55, 0x04, 0x07], "L"),
    (&[0x55, 0x04, 0x08], "ST"),
    (&[0x55, 0x04, 0x06], "C"),
];

/// A distinguished name (the contents of its `SEQUENCE`, as webpki gives
/// subjects and issuers) in `openssl x509 -subject`'s order and form
/// (`C=DE, O=Example, CN=clients`), with the common attributes only;
/// `None` when it has none of them in a string type read here.
pub(super) fn readable_name(mut name: &[u8]) -> Option<String> {
    let mut shown = Vec::new();
    while let Some(set) = expect(name, SET) {
        name = set.rest;
        let mut attributes = set.contents;
        while let Some(attribute) = expect(attributes, SEQUENCE) {
            attributes = attribute.rest;
            let Some(oid) = expect(attribute.contents, OID) else {
                continue;
            };
            let label = SHOWN.iter().find(|(id, _)| *id == oid.contents);
            let value = element(oid.rest).and_then(|value| text(value.tag, value.contents));
            if let (Some((_, label)), Some(value)) = (label, value) {
                shown.push(format!("{label}={}", value.escape_debug()));
            }
        }
    }
    (!shown.is_empty()).then(|| shown.join(", "))
}

/// The text of a string element: UTF8String, PrintableString, IA5String
/// or BMPString (UTF-16, big-endian).
fn text(tag: u8, contents: &[u8]) -> Option<String> {
    match tag {
        0x0c | 0x13 | 0x16 => String::from_utf8(contents.to_vec()).ok(),
        0x1e if contents.len().is_multiple_of(2) => {
            let units = contents
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The subject of a certificate rcgen makes, as webpki gives it.
    fn subject(dn: &[(rcgen::DnType, &str)]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (kind, value) in dn {
            params
                .distinguished_name
                .push(kind.clone(), rcgen::DnValue::Utf8String(value.to_string()));
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let der = rustls::pki_types::CertificateDer::from(cert.der().to_vec());
        webpki::anchor_from_trusted_cert(&der)
            .unwrap()
            .subject
            .as_ref()
            .to_vec()
    }

    #[test]
    fn names_read_as_openssl_prints_them() {
        use rcgen::DnType;
        let name = subject(&[
            (DnType::CountryName, "DE"),
            (DnType::OrganizationName, "Ex`ample"),
            (DnType::CommonName, "clients\n"),
        ]);
        assert_eq!(
            readable_name(&name).as_deref(),
            Some("C=DE, O=Ex`ample, CN=clients\\n")
        );
        // No attribute read here: no name.
        let other = subject(&[(DnType::CustomDnType(vec![1, 2, 3, 4]), "x")]);
        assert_eq!(readable_name(&other), None);
        assert_eq!(readable_name(&[]), None);
    }

    #[test]
    fn signed_parts_are_split_and_bad_input_is_none() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.example".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der();
        let parts = signed(der).unwrap();
        assert!(der.windows(parts.data.len()).any(|w| w == parts.data));
        // ecdsa-with-SHA256, as in `signature_alg_id` of rustls' algorithms.
        assert_eq!(
            parts.algorithm,
            [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]
        );
        assert!(!parts.signature.is_empty());
        for cut in [0, 1, 2, der.len() / 2, der.len() - 1] {
            assert!(signed(&der[..cut]).is_none(), "cut at {cut}");
        }
    }
}
