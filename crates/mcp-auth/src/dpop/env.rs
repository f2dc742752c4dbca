//! DPoP from the environment: [`DpopVerifier::from_env`].

use mcp_security_core::config::{ConfigError, Env};

use super::{DpopMode, DpopVerifier};

impl DpopVerifier {
    /// The DPoP mode and verifier the environment asks for, or `None` when DPoP is off (the
    /// default). With the prefix `MCP`:
    ///
    /// | variable | meaning | default |
    /// |---|---|---|
    /// | `MCP_DPOP` | `off`, `allowed` (bound tokens need a proof, bearer tokens still work) or `required` (every JWT bound, with a proof) | `off` |
    /// | `MCP_DPOP_NONCE` | server nonces (RFC 9449 §8): a proof must carry a recent `DPoP-Nonce` | `false` |
    /// | `MCP_DPOP_NONCE_KEY` / `_FILE` | the key nonces are made with, at least 32 bytes; share it between replicas | random per process |
    ///
    /// Hand the result to [`AuthLayerBuilder::dpop`](crate::layer::AuthLayerBuilder::dpop) and
    /// [`dpop_mode`](crate::layer::AuthLayerBuilder::dpop_mode), as
    /// [`AuthLayer::builder_from_env`](crate::layer::AuthLayer::builder_from_env) does.
    ///
    /// ```
    /// use mcp_auth::dpop::{DpopMode, DpopVerifier};
    /// use mcp_security_core::config::Env;
    ///
    /// let env = Env::from_pairs("MCP", [("MCP_DPOP", "required"), ("MCP_DPOP_NONCE", "true")]);
    /// let (mode, verifier) = DpopVerifier::from_env(&env)?.expect("DPoP is on");
    /// assert_eq!(mode, DpopMode::Required);
    /// assert!(verifier.requires_nonce());
    ///
    /// assert!(DpopVerifier::from_env(&Env::from_pairs("MCP", [("MCP_X", "1")]))?.is_none());
    /// let err = DpopVerifier::from_env(&Env::from_pairs("MCP", [("MCP_DPOP", "maybe")]))
    ///     .unwrap_err();
    /// assert_eq!(err.setting(), "MCP_DPOP");
    /// # Ok::<(), mcp_security_core::config::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// A mode other than off, allowed or required (`DPOP`); a value that is not a boolean
    /// (`DPOP_NONCE`); nonce settings while DPoP is off, or a nonce key without nonces or under
    /// 32 bytes (`DPOP_NONCE`, `DPOP_NONCE_KEY`) — each naming the variable.
    pub fn from_env(env: &Env) -> Result<Option<(DpopMode, DpopVerifier)>, ConfigError> {
        let mode_var = env.var_name("DPOP");
        let mode = match env.string("DPOP")? {
            None => DpopMode::Off,
            Some(value) => value
                .parse::<DpopMode>()
                .map_err(|reason| ConfigError::new(&mode_var, reason).with_value(value.clone()))?,
        };
        let nonce_var = env.var_name("DPOP_NONCE");
        let key_var = env.var_name("DPOP_NONCE_KEY");
        let nonce = env.bool("DPOP_NONCE", false)?;
        let key = env.secret("DPOP_NONCE_KEY")?;
        if mode == DpopMode::Off {
            if nonce {
                return Err(ConfigError::new(
                    nonce_var,
                    format!("server nonces need DPoP on: set {mode_var} to allowed or required"),
                ));
            }
            if key.is_some() {
                return Err(ConfigError::new(
                    key_var,
                    format!("a nonce key needs DPoP on: set {mode_var} to allowed or required"),
                ));
            }
            return Ok(None);
        }
        let mut builder = DpopVerifier::builder().nonce(nonce);
        if let Some(key) = key {
            if !nonce {
                return Err(ConfigError::new(
                    key_var,
                    format!("a nonce key without nonces: set {nonce_var}=true or unset it"),
                ));
            }
            builder = builder.nonce_key(key);
        }
        let verifier = builder.build().map_err(|e| {
            let var = if e.setting() == "dpop_nonce_key" {
                &key_var
            } else {
                &nonce_var
            };
            e.renamed(var.as_str())
        })?;
        Ok(Some((mode, verifier)))
    }
}
