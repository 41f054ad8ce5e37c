//! The MQTT sink: one publish per notice, over a connection kept open in the background.
//!
//! A task owns rumqttc's event loop and polls it all the time (keep-alive pings,
//! reconnecting after a pause that doubles from 250 ms to 30 s). Notices are published one
//! at a time by the sink's worker, which waits for the event loop to report the publish
//! written (QoS 0) or acknowledged by the broker (QoS 1). An attempt made while a connection
//! is being opened waits for it; one made while there is none (the pause between two tries)
//! fails at once and is retried with backoff: nothing piles up inside rumqttc.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Incoming, MqttOptions, Outgoing, QoS};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::attempt::{AttemptError, Prepared};
use super::notice::MAX_NOTICE_BYTES;
use super::settings::{MqttSettings, parse_mqtt_url};
use super::topic::TopicTemplate;

/// Longest pause between two connection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(30);
/// First pause after a lost or refused connection.
const MIN_RECONNECT_DELAY: Duration = Duration::from_millis(250);

/// A publish waiting for the event loop to confirm it.
struct Waiter {
    qos1: bool,
    /// Packet id, once written (QoS 1).
    pkid: Option<u16>,
    done: oneshot::Sender<Result<(), String>>,
}

/// The connection, as the connection task last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Connection {
    /// Connecting (at start, or again after a pause).
    Connecting,
    /// Connected (CONNACK received).
    Up,
    /// Lost or refused, with why; the task pauses before connecting again.
    Down(String),
}

struct Shared {
    connection: watch::Sender<Connection>,
    waiter: Mutex<Option<Waiter>>,
}

impl Shared {
    fn waiter(&self) -> std::sync::MutexGuard<'_, Option<Waiter>> {
        self.waiter.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_up(&self) -> bool {
        *self.connection.borrow() == Connection::Up
    }
}

/// A configured MQTT sink and its connection task.
pub(crate) struct MqttSink {
    client: AsyncClient,
    shared: Arc<Shared>,
    topic: TopicTemplate,
    qos: QoS,
    retain: bool,
    broker: String,
    poll: JoinHandle<()>,
    stop: CancellationToken,
}

impl MqttSink {
    /// Starts connecting (in the background) to the broker.
    pub(crate) fn start(settings: &MqttSettings, client_id: String) -> Result<Self, String> {
        let (host, port) = parse_mqtt_url(&settings.url)?;
        let topic = TopicTemplate::parse(&settings.topic)?;
        let broker = format!("{host}:{port}");
        let mut options = MqttOptions::new(client_id, host, port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(true)
            .set_inflight(8)
            // Room for the largest notice and topic.
            .set_max_packet_size(16 * 1024, MAX_NOTICE_BYTES + 70 * 1024);
        if let Some(user) = &settings.username {
            options.set_credentials(user.clone(), settings.password.clone().unwrap_or_default());
        }
        let (client, mut eventloop) = AsyncClient::new(options, 8);
        let mut network = eventloop.network_options();
        network.set_connection_timeout(settings.timeout.as_secs().max(1));
        eventloop.set_network_options(network);
        let shared = Arc::new(Shared {
            connection: watch::Sender::new(Connection::Connecting),
            waiter: Mutex::new(None),
        });
        let stop = CancellationToken::new();
        let poll = tokio::spawn(run(eventloop, shared.clone(), broker.clone(), stop.clone()));
        Ok(MqttSink {
            client,
            shared,
            topic,
            qos: if settings.qos == 0 {
                QoS::AtMostOnce
            } else {
                QoS::AtLeastOnce
            },
            retain: settings.retain,
            broker,
            poll,
            stop,
        })
    }

    pub(crate) fn broker(&self) -> &str {
        &self.broker
    }

    /// Publishes one notice and waits for the event loop's confirmation; the caller bounds
    /// its time. While a connection is being opened it waits for it; while there is none
    /// (between two tries) it fails at once.
    pub(crate) async fn attempt(&self, msg: &Prepared) -> Result<(), AttemptError> {
        let mut connection = self.shared.connection.subscribe();
        let state = connection
            .wait_for(|c| *c != Connection::Connecting)
            .await
            .map(|c| c.clone())
            .map_err(|_| AttemptError::retryable("the connection task ended".to_string()))?;
        if let Connection::Down(e) = state {
            return Err(AttemptError::retryable(format!(
                "not connected to the broker ({e})"
            )));
        }
        let (done, confirmed) = oneshot::channel();
        *self.shared.waiter() = Some(Waiter {
            qos1: self.qos == QoS::AtLeastOnce,
            pkid: None,
            done,
        });
        let topic = self.topic.render(msg);
        if let Err(e) = self
            .client
            .try_publish(topic, self.qos, self.retain, msg.body.to_vec())
        {
            self.shared.waiter().take();
            return Err(AttemptError::retryable(format!("cannot publish: {e}")));
        }
        match confirmed.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(AttemptError::retryable(e)),
            Err(_) => Err(AttemptError::retryable(
                "the connection task ended".to_string(),
            )),
        }
    }

    /// Disconnects (politely when connected) and stops the connection task.
    pub(crate) async fn close(mut self) {
        if self.shared.is_up()
            && self.client.try_disconnect().is_ok()
            && tokio::time::timeout(Duration::from_secs(2), &mut self.poll)
                .await
                .is_ok()
        {
            return;
        }
        self.stop.cancel();
        let _ = (&mut self.poll).await;
    }
}

impl Drop for MqttSink {
    /// The connection task never outlives the sink.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn run(
    mut eventloop: EventLoop,
    shared: Arc<Shared>,
    broker: String,
    stop: CancellationToken,
) {
    let mut delay = MIN_RECONNECT_DELAY;
    let mut failing = false;
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => break,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                shared.connection.send_replace(Connection::Up);
                delay = MIN_RECONNECT_DELAY;
                if failing {
                    tracing::info!(broker, "MQTT: connected again");
                } else {
                    tracing::debug!(broker, "MQTT: connected");
                }
                failing = false;
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                let mut waiter = shared.waiter();
                if let Some(w) = waiter.as_mut()
                    && w.pkid.is_none()
                {
                    if w.qos1 {
                        w.pkid = Some(pkid);
                    } else if let Some(w) = waiter.take() {
                        let _ = w.done.send(Ok(()));
                    }
                }
            }
            Ok(Event::Incoming(Incoming::PubAck(ack))) => {
                let mut waiter = shared.waiter();
                if waiter.as_ref().is_some_and(|w| w.pkid == Some(ack.pkid))
                    && let Some(w) = waiter.take()
                {
                    let _ = w.done.send(Ok(()));
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
            Ok(_) => {}
            Err(e) => {
                let error = e.to_string();
                let previous = shared
                    .connection
                    .send_replace(Connection::Down(error.clone()));
                if let Some(w) = shared.waiter().take() {
                    let _ = w.done.send(Err(format!("connection lost: {error}")));
                }
                if !failing || previous != Connection::Down(error.clone()) {
                    tracing::warn!(broker, %error,
                        "MQTT: no connection to the broker; retrying (repeats at debug)");
                } else {
                    tracing::debug!(broker, %error, "MQTT: still no connection");
                }
                failing = true;
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(MAX_RECONNECT_DELAY);
                shared.connection.send_replace(Connection::Connecting);
            }
        }
    }
    shared
        .connection
        .send_replace(Connection::Down("notifications stopped".to_string()));
}
