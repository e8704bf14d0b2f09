//! Test certificates, generated at test time.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SerialNumber,
};

/// A private certificate authority.
pub struct TestCa {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
    /// What the CA's certificate was made from, to forge its lists.
    params: CertificateParams,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let params = TestCa::params(name);
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params.clone(), key),
            params,
        }
    }

    fn params(name: &str) -> CertificateParams {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
    }

    /// An intermediate CA named `name` issued by this one; its `pem` is
    /// its certificate only (a client sends it after its own).
    pub fn intermediate(&self, name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let params = TestCa::params(name);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params.clone(), key),
            params,
        }
    }

    /// A leaf certificate and key (PEM) for `names` (DNS names or IPs).
    pub fn issue(&self, names: &[&str]) -> (String, String) {
        self.leaf(names, |_| {})
    }

    fn leaf(&self, names: &[&str], tweak: impl FnOnce(&mut CertificateParams)) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, names[0].clone());
        tweak(&mut params);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Like [`TestCa::issue`], valid only between the two dates
    /// (year, month, day).
    pub fn issue_between(
        &self,
        names: &[&str],
        from: (i32, u8, u8),
        to: (i32, u8, u8),
    ) -> (String, String) {
        self.leaf(names, |params| {
            params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
            params.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
        })
    }

    /// A client certificate and key (PEM) for mTLS, named `name`.
    pub fn issue_client(&self, name: &str) -> (String, String) {
        self.client(name, None)
    }

    /// Like [`TestCa::issue_client`], with the serial number `serial`
    /// (for revocation lists).
    pub fn issue_client_numbered(&self, name: &str, serial: u64) -> (String, String) {
        self.client(name, Some(serial))
    }

    fn client(&self, name: &str, serial: Option<u64>) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.serial_number = serial.map(SerialNumber::from);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// The CA's revocation list (PEM), revoking the certificates with
    /// these serial numbers; its next update is `next_update` (year,
    /// month, day).
    pub fn revocation_list(&self, serials: &[u64], next_update: (i32, u8, u8)) -> String {
        self.list_signed_by(&self.issuer, serials, next_update)
    }

    /// A list naming this CA as issuer, revoking `serials`, but signed by
    /// a new key of the kind `algorithm` (a forged or mixed-up list).
    pub fn revocation_list_signed_by_other_key(
        &self,
        serials: &[u64],
        algorithm: &'static rcgen::SignatureAlgorithm,
    ) -> String {
        let key = KeyPair::generate_for(algorithm).unwrap();
        let issuer = Issuer::new(self.params.clone(), key);
        self.list_signed_by(&issuer, serials, (2099, 1, 1))
    }

    fn list_signed_by(
        &self,
        issuer: &Issuer<'static, KeyPair>,
        serials: &[u64],
        next_update: (i32, u8, u8),
    ) -> String {
        let params = CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2024, 1, 1),
            next_update: rcgen::date_time_ymd(next_update.0, next_update.1, next_update.2),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|&serial| RevokedCertParams {
                    serial_number: SerialNumber::from(serial),
                    revocation_time: rcgen::date_time_ymd(2024, 1, 1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(issuer).unwrap().pem().unwrap()
    }
}

/// A rustls server config with the certificate chain and key (PEM) given,
/// agreeing by ALPN on the first of `alpn` the client offers (none: ALPN
/// is not answered).
pub fn server_config(
    cert: &str,
    key: &str,
    alpn: &[&[u8]],
) -> std::sync::Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    protogate::install_crypto_provider();
    let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    std::sync::Arc::new(config)
}
