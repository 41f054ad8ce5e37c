//! Real-time notifications when a product is confirmed defective (webhook, MQTT), with a
//! cooldown so one bad batch does not flood the engineers.
