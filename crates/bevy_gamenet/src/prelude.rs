//! What a game uses most, in one import:
//!
//! ```
//! use bevy_gamenet::prelude::*;
//! ```
//!
//! The plugins and their app extensions, the messages they write, the
//! replication components, the rollback schedule and its inputs, and the
//! `gamenet` types their settings take (mesh builder, ICE servers, peer ids,
//! channels, rollback and replication settings, the quantisers).

pub use crate::lobby::{Lobbies, LobbyAnswer, LobbyPlugin, LobbySpec, LobbyTicket};
pub use crate::replication::{
    AuthorityRequested, ConnectReplication, FromPeer, HandOver, HiddenFrom, NetEntity, NetMessage,
    NetState, OwnerChanged, Remote, Replicated, ReplicationApp, ReplicationPlugin,
    ReplicationSettings, RequestAuthority, ToPeers, Transform2d, Transform3d, TransformState,
};
pub use crate::rollback::Input;
pub use crate::rollback::{
    AddRollback, ConnectRollback, LocalInputs, LocalPlayers, PlayerInputs, ReadInputs, Rollback,
    RollbackApp, RollbackFrame, RollbackPlugin, RollbackSchedule, RollbackSocket, RollbackTime,
    SessionEvent,
};
pub use crate::{
    Connection, ConnectionFailed, GamenetPlugin, GamenetSet, HandshakeFailed, IceRefreshed,
    LinkConditions, MeshSocket, MessageReceived, NetClock, PeerInterrupted, PeerJoined, PeerLeft,
    PeerResumed, Room, SignalRefused,
};
pub use gamenet::replication::ReplicationConfig;
pub use gamenet::replication::quantize::{BoundedFloat, BoundedInt, Position, SmallestThree};
pub use gamenet::rollback::{Frame, InputStatus, RollbackConfig, RollbackStart};
pub use gamenet::{Channel, ConditionerConfig, IceServer, PeerId, PeerMesh, PeerMeshBuilder};
