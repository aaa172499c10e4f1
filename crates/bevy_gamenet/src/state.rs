//! [`Connection`], the app's connection as a Bevy [`State`]: in a lobby,
//! connecting, playing, reconnecting, failed; set from the mesh's messages by
//! every gamenet plugin.

use std::collections::BTreeSet;

use bevy_app::{App, PreUpdate};
use bevy_ecs::prelude::*;
use bevy_reflect::Reflect;
use bevy_reflect::std_traits::ReflectDefault;
use bevy_state::app::{AppExtStates, StatesPlugin};
use bevy_state::prelude::{NextState, State, States};
use gamenet::PeerId;

use crate::{ConnectionFailed, GamenetSet, PeerInterrupted, PeerJoined, PeerLeft, PeerResumed};

/// Where the app's connection stands, in an app with Bevy's states
/// (`StatesPlugin`, part of `DefaultPlugins`). Read it with
/// `Res<State<Connection>>`, or run systems `OnEnter(Connection::Failed)`
/// and the like.
#[derive(States, Reflect, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[reflect(Debug, Default, PartialEq, Hash)]
pub enum Connection {
    /// Choosing a lobby: the app has the lobby plugin (`lobby::LobbyPlugin`)
    /// and has not connected yet (`rollback::ConnectRollback` connects).
    InLobby,
    /// No peer linked yet (or none left): reaching the signaling server,
    /// waiting for or linking to peers.
    #[default]
    Connecting,
    /// Linked to at least one peer, and no link interrupted.
    Playing,
    /// A linked peer went silent: its link is being restored (it resumes,
    /// or leaves after the mesh's disconnect timeout).
    Reconnecting,
    /// The connection could not be made or ended for good (see the
    /// [`ConnectionFailed`] message for why); it stays so.
    Failed,
}

/// Present while the app chooses a lobby, before it connects.
#[derive(Resource)]
pub(crate) struct Choosing;

/// The peers the state is worked out from.
#[derive(Default)]
struct Links {
    linked: BTreeSet<PeerId>,
    interrupted: BTreeSet<PeerId>,
    failed: bool,
}

impl Links {
    fn state(&self, choosing: bool) -> Connection {
        if self.failed {
            Connection::Failed
        } else if !self.interrupted.is_empty() {
            Connection::Reconnecting
        } else if self.linked.is_empty() && choosing {
            Connection::InLobby
        } else if self.linked.is_empty() {
            Connection::Connecting
        } else {
            Connection::Playing
        }
    }
}

/// Adds the state and the system that sets it, once per app, if the app
/// has Bevy's states (`StatesPlugin`, part of `DefaultPlugins`); called from
/// the plugins' `finish`, when every plugin is added.
pub(crate) fn init(app: &mut App) {
    if app.world().contains_resource::<State<Connection>>()
        || !app.is_plugin_added::<StatesPlugin>()
    {
        return;
    }
    if app.world().contains_resource::<Choosing>() {
        app.insert_state(Connection::InLobby);
    } else {
        app.init_state::<Connection>();
    }
    app.add_systems(PreUpdate, follow.after(GamenetSet::Receive));
}

/// Follows peers joining, going silent, resuming and leaving, and failures.
#[allow(clippy::too_many_arguments)]
fn follow(
    mut links: Local<Links>,
    mut joined: MessageReader<PeerJoined>,
    mut interrupted: MessageReader<PeerInterrupted>,
    mut resumed: MessageReader<PeerResumed>,
    mut left: MessageReader<PeerLeft>,
    mut failed: MessageReader<ConnectionFailed>,
    choosing: Option<Res<Choosing>>,
    state: Res<State<Connection>>,
    mut next: ResMut<NextState<Connection>>,
) {
    for PeerJoined(peer) in joined.read() {
        links.linked.insert(*peer);
        links.interrupted.remove(peer);
    }
    for PeerInterrupted(peer) in interrupted.read() {
        if links.linked.contains(peer) {
            links.interrupted.insert(*peer);
        }
    }
    for PeerResumed(peer) in resumed.read() {
        links.interrupted.remove(peer);
    }
    for gone in left.read() {
        links.linked.remove(&gone.peer);
        links.interrupted.remove(&gone.peer);
    }
    if failed.read().next().is_some() {
        links.failed = true;
    }
    let now = links.state(choosing.is_some());
    if now != **state {
        next.set(now);
    }
}
