//! ICE servers (STUN, TURN): how they are given, read from a signaling server's
//! answer, and merged into the one entry matchbox_socket takes.

use matchbox_socket::RtcIceServerConfig;

use crate::Error;

/// An ICE server (STUN or TURN) for WebRTC connection set-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceServer {
    /// Its URLs, such as `stun:host:3478` or `turn:host:3478?transport=udp`.
    pub urls: Vec<String>,
    /// User name, for TURN.
    pub username: Option<String>,
    /// Credential, for TURN.
    pub credential: Option<String>,
}

impl IceServer {
    /// A STUN server at `url`.
    pub fn stun(url: impl Into<String>) -> Self {
        Self {
            urls: vec![url.into()],
            username: None,
            credential: None,
        }
    }

    /// A TURN server at `url` (`turn:host:3478?transport=udp`) with its credentials.
    pub fn turn(
        url: impl Into<String>,
        username: impl Into<String>,
        credential: impl Into<String>,
    ) -> Self {
        Self {
            urls: vec![url.into()],
            username: Some(username.into()),
            credential: Some(credential.into()),
        }
    }

    /// The ICE servers of a `gamenet-signaling` server's `/api/ice` answer (or
    /// any JSON with an `iceServers` list in `RTCIceServer` form).
    pub fn list_from_json(json: &str) -> Result<Vec<Self>, Error> {
        #[derive(serde::Deserialize)]
        struct Answer {
            #[serde(rename = "iceServers")]
            ice_servers: Vec<Entry>,
        }
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Urls {
            One(String),
            Many(Vec<String>),
        }
        #[derive(serde::Deserialize)]
        struct Entry {
            urls: Urls,
            username: Option<String>,
            credential: Option<String>,
        }
        let answer: Answer =
            serde_json::from_str(json).map_err(|e| Error::IceServers(e.to_string()))?;
        Ok(answer
            .ice_servers
            .into_iter()
            .map(|entry| Self {
                urls: match entry.urls {
                    Urls::One(url) => vec![url],
                    Urls::Many(urls) => urls,
                },
                username: entry.username,
                credential: entry.credential,
            })
            .collect())
    }

    /// No ICE server: peers gather host candidates only, as on one network.
    pub fn none() -> Self {
        Self {
            urls: Vec::new(),
            username: None,
            credential: None,
        }
    }
}

/// One `RTCIceServer` for matchbox_socket: every URL, and the one set of
/// credentials the servers that have any share.
pub(crate) fn merge_ice_servers(servers: Vec<IceServer>) -> Result<RtcIceServerConfig, Error> {
    let mut merged = RtcIceServerConfig {
        urls: Vec::new(),
        username: None,
        credential: None,
    };
    for server in servers {
        if server.username.is_some() || server.credential.is_some() {
            let theirs = (server.username, server.credential);
            match (&merged.username, &merged.credential) {
                (None, None) => (merged.username, merged.credential) = theirs,
                ours if (ours.0, ours.1) == (&theirs.0, &theirs.1) => {}
                _ => {
                    return Err(Error::IceServers(format!(
                        "{:?} has other credentials than the servers before it",
                        server.urls
                    )));
                }
            }
        }
        merged.urls.extend(server.urls);
    }
    Ok(merged)
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn ice_servers_merge_into_one_entry_when_credentials_agree() {
        let json = r#"{"iceServers": [
            {"urls": ["stun:10.0.0.1:3478"]},
            {"urls": "turn:10.0.0.1:3478?transport=udp", "username": "99:u", "credential": "pw"}
        ], "ttl": 3600}"#;
        let servers = IceServer::list_from_json(json).unwrap();
        assert_eq!(
            servers,
            [
                IceServer::stun("stun:10.0.0.1:3478"),
                IceServer::turn("turn:10.0.0.1:3478?transport=udp", "99:u", "pw")
            ]
        );
        let mut more = servers.clone();
        more.push(IceServer::turn("turn:10.0.0.2:3478", "99:u", "pw"));
        let merged = merge_ice_servers(more.clone()).unwrap();
        assert_eq!(merged.urls.len(), 3);
        assert_eq!(merged.username.as_deref(), Some("99:u"));
        assert_eq!(merged.credential.as_deref(), Some("pw"));
        more.push(IceServer::turn("turn:10.0.0.3:3478", "other", "pw"));
        assert!(matches!(merge_ice_servers(more), Err(Error::IceServers(_))));
        assert!(IceServer::list_from_json("{\"iceServers\": 3}").is_err());
        assert!(merge_ice_servers(Vec::new()).unwrap().urls.is_empty());
    }
}
