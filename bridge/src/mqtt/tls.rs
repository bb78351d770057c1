//! TLS for `mqtts://` brokers (rustls, ring provider): the broker's certificate is verified against the system's
//! roots or `bridge.mqtt.ca_file`, and against the host name in `bridge.mqtt.url`. `tls_insecure` skips the
//! verification (the handshake signatures are still checked), only when set explicitly, and is logged loudly.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use shared::config::Mqtt;

use super::MqttError;

/// Builds the TLS client configuration of `m` (only for `mqtts://`).
pub fn client_config(m: &Mqtt) -> Result<Arc<ClientConfig>, MqttError> {
    // ring rather than aws-lc-rs: no C/cmake build on a Raspberry Pi. It lacks only the post-quantum key exchange,
    // which a broker on the LAN does not need.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| MqttError::Tls { setting: "bridge.mqtt.url", message: e.to_string() })?;
    let builder = if m.tls_insecure {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
    } else {
        builder.with_root_certificates(roots(m.ca_file.as_deref())?)
    };
    let config = match (&m.client_cert_file, &m.client_key_file) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert, "bridge.mqtt.client_cert_file")?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| MqttError::Tls {
                setting: "bridge.mqtt.client_key_file",
                message: format!("{}: no readable PEM private key ({e})", key.display()),
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| MqttError::Tls {
                setting: "bridge.mqtt.client_key_file",
                message: format!("the key does not fit the client certificate: {e}"),
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn read_certs(path: &Path, setting: &'static str) -> Result<Vec<CertificateDer<'static>>, MqttError> {
    let bad = |message: String| MqttError::Tls { setting, message };
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(format!("{}: {e}", path.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(bad(format!("{}: no PEM certificate in the file", path.display())));
    }
    Ok(certs)
}

fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, MqttError> {
    let mut store = RootCertStore::empty();
    if let Some(path) = ca_file {
        for cert in read_certs(path, "bridge.mqtt.ca_file")? {
            store.add(cert).map_err(|e| MqttError::Tls {
                setting: "bridge.mqtt.ca_file",
                message: format!("{}: not a usable CA certificate: {e}", path.display()),
            })?;
        }
        return Ok(store);
    }
    let found = rustls_native_certs::load_native_certs();
    let (added, _) = store.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(MqttError::Tls {
            setting: "bridge.mqtt.ca_file",
            message: "the system has no CA certificates (install ca-certificates, or set bridge.mqtt.ca_file)".into(),
        });
    }
    Ok(store)
}

/// The `tls_insecure` verifier: any certificate is accepted, the handshake signatures are still checked.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Explains a TLS failure of a connection attempt, naming the setting to look at, if it is one.
#[must_use]
pub fn explain(error: &rustls::Error, m: &Mqtt) -> Option<String> {
    use rustls::{AlertDescription, CertificateError};
    let trusted = match &m.ca_file {
        Some(p) => format!("the CA in bridge.mqtt.ca_file ({})", p.display()),
        None => "the system's CA roots (bridge.mqtt.ca_file is not set)".to_owned(),
    };
    Some(match error {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer | CertificateError::BadSignature) => {
            format!(
                "TLS: the broker's certificate is not signed by {trusted}; set bridge.mqtt.ca_file to the CA that \
                 signed it"
            )
        }
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "TLS: the broker's certificate is not valid for the host name '{}' in bridge.mqtt.url ({}); use the \
             name the certificate was issued for",
            m.host, m.url
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. } | CertificateError::NotValidYet,
        ) => "TLS: the broker's certificate is expired or not yet valid (check the broker and this host's clock)"
            .to_owned(),
        rustls::Error::InvalidCertificate(other) => {
            format!("TLS: the broker's certificate was refused ({other:?}); checked against {trusted}")
        }
        rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown,
        ) => format!(
            "TLS: the broker refused the client certificate ({error}); check bridge.mqtt.client_cert_file{}",
            if m.client_cert_file.is_none() { " (not set: the broker wants one)" } else { "" }
        ),
        _ => return None,
    })
}
