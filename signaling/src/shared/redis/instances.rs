//! Instances announcing themselves, the clients of dead ones, and the
//! messages instances send each other's clients.

use std::time::Duration;

use matchbox_protocol::PeerId;
use redis::AsyncCommands;

use super::{RedisState, peer_of, unavailable};
use crate::shared::SharedError;

impl RedisState {
    /// Announces `instance` as alive for `ttl`; an instance whose
    /// announcement expires is dead to the others.
    pub async fn announce(&self, instance: &str, ttl: Duration) -> Result<(), SharedError> {
        let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let _: () = redis::pipe()
            .cmd("SET")
            .arg(self.key(&format!("inst:{instance}")))
            .arg(1)
            .arg("PX")
            .arg(ttl)
            .ignore()
            .sadd(self.key("instances"), instance)
            .ignore()
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Instances seen before whose announcement expired.
    pub async fn dead_instances(&self) -> Result<Vec<String>, SharedError> {
        self.scripts
            .dead_instances
            .arg(&self.prefix)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }

    /// The peers connected to `instance` (as far as Redis knows).
    pub async fn members_of(&self, instance: &str) -> Result<Vec<PeerId>, SharedError> {
        let members: Vec<String> = self
            .conn
            .clone()
            .smembers(self.key(&format!("members:{instance}")))
            .await
            .map_err(unavailable)?;
        members.iter().map(|m| peer_of(m)).collect()
    }

    /// Forgets a dead instance none of whose clients is in a room any more
    /// (its seats are free again); `false` if some still are, or it is alive.
    pub async fn forget_instance(&self, instance: &str) -> Result<bool, SharedError> {
        let forgotten: u64 = self
            .scripts
            .forget_instance
            .arg(&self.prefix)
            .arg(instance)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(forgotten == 1)
    }

    /// Whether `instance` announced itself within its time-to-live.
    pub async fn is_alive(&self, instance: &str) -> Result<bool, SharedError> {
        self.conn
            .clone()
            .exists(self.key(&format!("inst:{instance}")))
            .await
            .map_err(unavailable)
    }

    /// The channel of the messages for the clients of `instance`.
    fn channel(&self, instance: &str) -> String {
        self.key(&format!("to:{instance}"))
    }

    /// Sends `payload` to whichever instance subscribed for `instance`;
    /// `false` if none is (then it is lost: Redis pub/sub keeps nothing).
    pub async fn publish(&self, instance: &str, payload: &str) -> Result<bool, SharedError> {
        let receivers: i64 = self
            .conn
            .clone()
            .publish(self.channel(instance), payload)
            .await
            .map_err(unavailable)?;
        Ok(receivers > 0)
    }

    /// The payloads published for `instance` from now on, over a connection of
    /// its own; the stream ends when that connection does.
    pub async fn subscribe(
        &self,
        instance: &str,
    ) -> Result<impl futures::Stream<Item = String> + Send + use<>, SharedError> {
        use futures::StreamExt;
        let mut pubsub = tokio::time::timeout(self.timeout, self.client.get_async_pubsub())
            .await
            .map_err(|_| unavailable("no answer from Redis in time"))?
            .map_err(unavailable)?;
        pubsub
            .subscribe(self.channel(instance))
            .await
            .map_err(unavailable)?;
        Ok(pubsub
            .into_on_message()
            .filter_map(|message| async move { message.get_payload::<String>().ok() }))
    }
}
