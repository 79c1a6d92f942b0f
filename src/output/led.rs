//! The status LED on Linux LED-class devices (`/sys/class/leds/<name>/`): each colour is a
//! directory with `brightness` and, where the driver has it, `trigger`. Steady light is
//! `trigger = none` + `brightness = max`; blinking is the kernel's `timer` trigger with
//! `delay_on`/`delay_off`, so no loop in scanpay keeps it going.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::LedPattern;
use crate::events::{Event, Observer};

/// How long each pattern shows in the operator's LED test.
pub const LED_TEST_STEP: Duration = Duration::from_millis(1500);

/// Which status light the terminal has.
#[derive(Debug, Clone)]
pub enum LedConfig {
    None,
    /// Rendered on the terminal (stderr), as the demo does.
    Terminal,
    Sysfs(SysfsLeds),
}

#[derive(Debug, Clone, Default)]
pub struct SysfsLeds {
    pub green: Option<PathBuf>,
    pub red: Option<PathBuf>,
    pub yellow: Option<PathBuf>,
    pub blue: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Light {
    Off,
    On,
    Blink { on_ms: u32, off_ms: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Colour {
    Green,
    Red,
    Yellow,
    Blue,
}

/// What each documented pattern shows on each colour. Colours a box lacks fall back:
/// yellow to green (blinking), blue to green.
fn lights(p: LedPattern) -> [(Colour, Light); 4] {
    use Colour::*;
    use Light::*;
    let blink = |on_ms, off_ms| Blink { on_ms, off_ms };
    let (g, r, y, b) = match p {
        LedPattern::Idle => (Off, Off, Off, Off),
        LedPattern::Armed => (Off, Off, Off, On),
        LedPattern::Processing => (Off, Off, blink(250, 250), Off),
        LedPattern::CustomerConfirming => (Off, Off, blink(1000, 1000), Off),
        LedPattern::Paid => (On, Off, Off, Off),
        LedPattern::Failed => (Off, On, Off, Off),
        LedPattern::NeedsAttention => (Off, blink(150, 150), Off, Off),
        LedPattern::Offline => (Off, blink(500, 500), On, Off),
        LedPattern::ScannerMissing => (Off, blink(1000, 1000), Off, Off),
        LedPattern::ScanRefused => (Off, blink(100, 900), Off, Off),
    };
    [(Green, g), (Red, r), (Yellow, y), (Blue, b)]
}

pub struct SysfsLed {
    leds: SysfsLeds,
    current: Arc<Mutex<Option<LedPattern>>>,
    /// While the operator's test cycle runs, events only note the pattern they want; the
    /// cycle shows it when it ends.
    testing: Arc<AtomicBool>,
}

impl SysfsLeds {
    fn dir(&self, c: Colour) -> Option<&PathBuf> {
        match c {
            Colour::Green => self.green.as_ref(),
            Colour::Red => self.red.as_ref(),
            Colour::Yellow => self.yellow.as_ref(),
            Colour::Blue => self.blue.as_ref(),
        }
    }

    /// Sets every colour for `pattern`.
    fn apply(&self, pattern: LedPattern) {
        let mut wanted = lights(pattern);
        // Fallbacks for boxes without yellow or blue.
        for (colour, light) in wanted.iter_mut() {
            if self.dir(*colour).is_none() && *light != Light::Off {
                let fallback = match colour {
                    Colour::Yellow => Some(Light::Blink {
                        on_ms: 250,
                        off_ms: 250,
                    }),
                    Colour::Blue => Some(Light::On),
                    _ => None,
                };
                if let Some(f) = fallback {
                    *colour = Colour::Green;
                    *light = f;
                }
            }
        }
        // Off first, then on, so a fallback onto green is not undone.
        let (offs, ons): (Vec<_>, Vec<_>) = wanted.iter().partition(|(_, l)| *l == Light::Off);
        for (colour, light) in offs.into_iter().chain(ons) {
            if let Some(dir) = self.dir(colour)
                && let Err(e) = set(dir, light)
            {
                tracing::warn!(led = %dir.display(), error = %e, "cannot set the LED");
            }
        }
    }
}

impl SysfsLed {
    pub fn new(leds: SysfsLeds) -> SysfsLed {
        SysfsLed {
            leds,
            current: Arc::new(Mutex::new(None)),
            testing: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn show(&self, pattern: LedPattern) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if *current == Some(pattern) {
            return;
        }
        *current = Some(pattern);
        if !self.testing.load(Ordering::SeqCst) {
            self.leds.apply(pattern);
        }
    }

    /// The operator's LED test: every pattern in turn for `step`, on a thread of its own,
    /// then the pattern the events want by then. A second test while one runs does nothing.
    pub fn cycle(&self, step: Duration) {
        if self.testing.swap(true, Ordering::SeqCst) {
            return;
        }
        let (leds, current, testing) = (
            self.leds.clone(),
            self.current.clone(),
            self.testing.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name("led-test".into())
            .spawn(move || {
                for pattern in LedPattern::ALL {
                    leds.apply(*pattern);
                    std::thread::sleep(step);
                }
                let current = current.lock().unwrap_or_else(|e| e.into_inner());
                leds.apply(current.unwrap_or(LedPattern::Idle));
                testing.store(false, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the LED test");
            self.testing.store(false, Ordering::SeqCst);
        }
    }
}

fn write(dir: &Path, file: &str, value: &str) -> std::io::Result<()> {
    // sysfs attributes take one whole-value write.
    std::fs::write(dir.join(file), value)
}

fn set(dir: &Path, light: Light) -> std::io::Result<()> {
    let has_trigger = dir.join("trigger").exists();
    match light {
        Light::Off => {
            if has_trigger {
                write(dir, "trigger", "none")?;
            }
            write(dir, "brightness", "0")
        }
        Light::On => {
            if has_trigger {
                write(dir, "trigger", "none")?;
            }
            let max = std::fs::read_to_string(dir.join("max_brightness"))
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "1".to_string());
            write(dir, "brightness", &max)
        }
        Light::Blink { on_ms, off_ms } if has_trigger => {
            write(dir, "trigger", "timer")?;
            write(dir, "delay_on", &on_ms.to_string())?;
            write(dir, "delay_off", &off_ms.to_string())
        }
        // Without a trigger there is no kernel blinking: steady on says the same.
        Light::Blink { .. } => write(dir, "brightness", "1"),
    }
}

impl Observer for SysfsLed {
    fn event(&self, event: &Event) {
        if let Event::OperatorAction {
            action: "led_test", ..
        } = event
        {
            self.cycle(LED_TEST_STEP);
        }
        if let Some(p) = LedPattern::for_event(event) {
            self.show(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn led_dir(root: &Path, name: &str) -> PathBuf {
        let d = root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("brightness"), "0").unwrap();
        std::fs::write(d.join("max_brightness"), "255").unwrap();
        std::fs::write(d.join("trigger"), "[none] timer heartbeat").unwrap();
        d
    }

    fn read(d: &Path, f: &str) -> String {
        std::fs::read_to_string(d.join(f)).unwrap_or_default()
    }

    #[test]
    fn each_state_writes_the_documented_values() {
        let root = tempfile::tempdir().unwrap();
        let (g, r, y) = (
            led_dir(root.path(), "g"),
            led_dir(root.path(), "r"),
            led_dir(root.path(), "y"),
        );
        let led = SysfsLed::new(SysfsLeds {
            green: Some(g.clone()),
            red: Some(r.clone()),
            yellow: Some(y.clone()),
            blue: None,
        });
        led.show(LedPattern::Paid);
        assert_eq!(
            (read(&g, "brightness"), read(&g, "trigger")),
            ("255".into(), "none".into())
        );
        assert_eq!(read(&r, "brightness"), "0");
        led.show(LedPattern::Processing);
        assert_eq!(read(&g, "brightness"), "0");
        assert_eq!(
            (
                read(&y, "trigger"),
                read(&y, "delay_on"),
                read(&y, "delay_off")
            ),
            ("timer".into(), "250".into(), "250".into())
        );
        led.show(LedPattern::Failed);
        assert_eq!(
            (read(&r, "brightness"), read(&y, "brightness")),
            ("255".into(), "0".into())
        );
        // No blue LED: "armed" falls back to green, steady.
        led.show(LedPattern::Armed);
        assert_eq!(
            (read(&g, "brightness"), read(&g, "trigger")),
            ("255".into(), "none".into())
        );
        led.show(LedPattern::Offline);
        assert_eq!(
            (read(&r, "trigger"), read(&y, "brightness")),
            ("timer".into(), "255".into())
        );
    }

    #[test]
    fn a_missing_led_directory_is_reported_not_fatal() {
        let led = SysfsLed::new(SysfsLeds {
            green: Some(PathBuf::from("/nonexistent/led")),
            ..SysfsLeds::default()
        });
        led.show(LedPattern::Paid);
    }
}
