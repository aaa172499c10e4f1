//! [`NetworkOverlayPlugin`]: the network's figures on screen, from the
//! plugins' diagnostics, in every mode; a key shows and hides it, another
//! switches the link conditioner's preset.

use std::time::Duration;

use bevy_app::{App, Plugin, Startup, Update};
use bevy_color::Color;
use bevy_diagnostic::{DiagnosticPath, DiagnosticsStore};
use bevy_ecs::prelude::*;
use bevy_ecs::reflect::ReflectResource;
use bevy_input::ButtonInput;
use bevy_input::keyboard::KeyCode;
use bevy_reflect::Reflect;
use bevy_reflect::std_traits::ReflectDefault;
use bevy_text::{FontSize, TextColor, TextFont};
use bevy_ui::prelude::{BackgroundColor, Node, Text};
use bevy_ui::{Display, GlobalZIndex, PositionType, UiRect, Val};
use gamenet::{ConditionerConfig, Instant};

use crate::diagnostics::{BYTES_IN_PER_SEC, BYTES_OUT_PER_SEC, LOSS_PERCENT, PEERS, RTT_MS};
use crate::replication::BYTES_PER_SEC as REPLICATION_BYTES_PER_SEC;
use crate::rollback::{DESYNCS, FRAMES_PER_SEC, RESIMULATED_PER_SEC};
use crate::{LinkConditions, NetClock};

/// Shows the network's figures in a corner of the window: peers, worst RTT
/// and loss, bytes per second, replication's bytes, rollback's frame rates
/// and desyncs (the ones the app's plugins measure), and the link
/// conditioner's preset. [`NetworkOverlayPlugin::key`] shows and hides it,
/// [`NetworkOverlayPlugin::preset_key`] switches the conditioner to the next
/// of `ConditionerConfig::presets()`. Add it after a gamenet plugin, in an app
/// with Bevy's UI; the [`NetworkOverlay`] resource holds what it shows.
#[derive(Debug, Clone)]
pub struct NetworkOverlayPlugin {
    /// The key that shows and hides the overlay.
    pub key: KeyCode,
    /// The key that switches the link conditioner to the next preset, if any.
    pub preset_key: Option<KeyCode>,
    /// Whether it shows from the start.
    pub shown: bool,
}

impl Default for NetworkOverlayPlugin {
    fn default() -> Self {
        Self {
            key: KeyCode::F3,
            preset_key: Some(KeyCode::F4),
            shown: false,
        }
    }
}

/// What the overlay shows, refreshed four times a second: read it to show
/// the figures elsewhere or to check them in a test.
#[derive(Resource, Reflect, Debug, Clone, Default)]
#[reflect(Resource, Debug, Default)]
pub struct NetworkOverlay {
    /// Whether the overlay is on screen.
    pub shown: bool,
    /// The figures, by name (`peers`, `rtt_ms`, `loss_percent`,
    /// `bytes_in_per_sec`, `bytes_out_per_sec`, and where measured
    /// `replication_bytes_per_sec`, `frames_per_sec`,
    /// `resimulated_per_sec`, `desyncs`).
    pub readings: Vec<(&'static str, f64)>,
    /// The link conditioner's preset, or `custom`, or `off`.
    pub link: String,
    /// The text on screen.
    pub text: String,
}

impl NetworkOverlay {
    /// The reading of that name, if measured.
    pub fn reading(&self, name: &str) -> Option<f64> {
        self.readings
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}

/// The overlay's keys.
#[derive(Resource, Debug, Clone)]
struct Keys {
    toggle: KeyCode,
    preset: Option<KeyCode>,
}

/// The overlay's text node.
#[derive(Component)]
struct OverlayText;

/// How often the figures are read.
const REFRESH: Duration = Duration::from_millis(250);

impl Plugin for NetworkOverlayPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(NetworkOverlay {
            shown: self.shown,
            ..NetworkOverlay::default()
        })
        .insert_resource(Keys {
            toggle: self.key,
            preset: self.preset_key,
        })
        .init_resource::<LinkConditions>()
        .add_systems(Startup, spawn)
        .add_systems(Update, (keys, refresh, show).chain());
    }
}

fn spawn(mut commands: Commands, overlay: Res<NetworkOverlay>) {
    commands.spawn((
        OverlayText,
        Text::new(""),
        TextFont {
            font_size: FontSize::Px(15.0),
            ..TextFont::default()
        },
        TextColor(Color::srgb(0.75, 1.0, 0.75)),
        Node {
            position_type: PositionType::Absolute,
            top: Val::Px(40.0),
            right: Val::Px(12.0),
            padding: UiRect::all(Val::Px(8.0)),
            display: if overlay.shown {
                Display::Flex
            } else {
                Display::None
            },
            ..Node::default()
        },
        BackgroundColor(Color::srgba(0.0, 0.0, 0.0, 0.75)),
        GlobalZIndex(20),
    ));
}

/// Shows or hides the overlay; switches the conditioner's preset.
fn keys(
    input: Option<Res<ButtonInput<KeyCode>>>,
    keys: Res<Keys>,
    mut overlay: ResMut<NetworkOverlay>,
    mut conditions: ResMut<LinkConditions>,
) {
    let Some(input) = input else {
        return;
    };
    if input.just_pressed(keys.toggle) {
        overlay.shown = !overlay.shown;
    }
    if keys.preset.is_some_and(|k| input.just_pressed(k)) {
        conditions.0 = next_preset(conditions.0.as_ref());
    }
}

/// The preset after `now` (the first after none or a custom one), `None`
/// for a perfect link.
fn next_preset(now: Option<&ConditionerConfig>) -> Option<ConditionerConfig> {
    let presets = ConditionerConfig::presets();
    let at = now.and_then(|c| presets.iter().position(|(_, p)| p == c));
    let (_, next) = presets[at.map_or(1, |i| (i + 1) % presets.len())].clone();
    (next != ConditionerConfig::default()).then_some(next)
}

/// The name of the conditioner's setting.
fn link_name(conditions: Option<&ConditionerConfig>) -> String {
    match conditions {
        None => "off".to_owned(),
        Some(c) => ConditionerConfig::presets()
            .into_iter()
            .find(|(_, p)| p == c)
            .map_or("custom", |(name, _)| name)
            .to_owned(),
    }
}

/// Reads the figures, four times a second.
fn refresh(
    clock: Res<NetClock>,
    mut last: Local<Option<Instant>>,
    store: Option<Res<DiagnosticsStore>>,
    conditions: Res<LinkConditions>,
    keys: Res<Keys>,
    mut overlay: ResMut<NetworkOverlay>,
) {
    let now = clock.now();
    if last.is_some_and(|at| now.saturating_duration_since(at) < REFRESH) && !overlay.is_changed() {
        return;
    }
    *last = Some(now);
    let read = |path: &DiagnosticPath| {
        let d = store.as_ref()?.get(path)?;
        d.smoothed().or_else(|| d.value())
    };
    let mut readings = Vec::new();
    for (name, path) in [
        ("peers", PEERS),
        ("rtt_ms", RTT_MS),
        ("loss_percent", LOSS_PERCENT),
        ("bytes_in_per_sec", BYTES_IN_PER_SEC),
        ("bytes_out_per_sec", BYTES_OUT_PER_SEC),
        ("replication_bytes_per_sec", REPLICATION_BYTES_PER_SEC),
        ("frames_per_sec", FRAMES_PER_SEC),
        ("resimulated_per_sec", RESIMULATED_PER_SEC),
    ] {
        if let Some(v) = read(&path) {
            readings.push((name, v));
        }
    }
    // A count, not a rate: the newest value.
    if let Some(v) = store
        .as_ref()
        .and_then(|s| s.get(&DESYNCS))
        .and_then(|d| d.value())
    {
        readings.push(("desyncs", v));
    }
    let link = link_name(conditions.0.as_ref());
    let text = text(&readings, &link, &keys);
    let overlay = overlay.bypass_change_detection();
    (overlay.readings, overlay.link, overlay.text) = (readings, link, text);
}

/// How a reading shows.
type Show = fn(f64) -> String;

/// The overlay's lines.
fn text(readings: &[(&'static str, f64)], link: &str, keys: &Keys) -> String {
    let get = |name: &str| readings.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let mut lines = vec![format!("network ({:?})", keys.toggle)];
    let kb = |v: f64| v / 1e3;
    let shown: [(&str, Show); 6] = [
        ("peers", |v| format!("peers        {v:.0}")),
        ("rtt_ms", |v| format!("rtt (worst)  {v:.0} ms")),
        ("loss_percent", |v| format!("loss (worst) {v:.1} %")),
        ("replication_bytes_per_sec", |v| {
            format!("state sync   {:.1} kB/s", v / 1e3)
        }),
        ("frames_per_sec", |v| format!("frames       {v:.0} /s")),
        ("resimulated_per_sec", |v| {
            format!("rollback     {v:.0} frames/s")
        }),
    ];
    for (i, (name, show)) in shown.iter().enumerate() {
        if let Some(v) = get(name) {
            lines.push(show(v));
        }
        // Bytes in and out after loss.
        if i == 2
            && let (Some(i), Some(o)) = (get("bytes_in_per_sec"), get("bytes_out_per_sec"))
        {
            lines.push(format!("in / out     {:.1} / {:.1} kB/s", kb(i), kb(o)));
        }
    }
    match get("desyncs") {
        Some(v) if v > 0.0 => lines.push(format!("DESYNC       {v:.0} detected!")),
        Some(_) => lines.push("desyncs      none".to_owned()),
        None => {}
    }
    match keys.preset {
        Some(key) => lines.push(format!("link         {link} ({key:?}: next)")),
        None => lines.push(format!("link         {link}")),
    }
    lines.join("\n")
}

/// Puts the overlay on screen, or takes it off.
fn show(overlay: Res<NetworkOverlay>, mut q: Query<(&mut Text, &mut Node), With<OverlayText>>) {
    for (mut text, mut node) in &mut q {
        let display = if overlay.shown {
            Display::Flex
        } else {
            Display::None
        };
        if node.display != display {
            node.display = display;
        }
        if overlay.shown && text.0 != overlay.text {
            text.0.clone_from(&overlay.text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preset_key_goes_round_the_presets() {
        let mut now = None;
        let mut names = Vec::new();
        for _ in 0..5 {
            now = next_preset(now.as_ref());
            names.push(link_name(now.as_ref()));
        }
        assert_eq!(names, ["wifi", "mobile", "bad", "off", "wifi"]);
        let custom = ConditionerConfig {
            latency: Duration::from_millis(7),
            ..ConditionerConfig::default()
        };
        assert_eq!(link_name(Some(&custom)), "custom");
        assert_eq!(link_name(next_preset(Some(&custom)).as_ref()), "wifi");
    }
}
