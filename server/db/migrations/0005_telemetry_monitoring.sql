ALTER TABLE `telemetry` ADD `monitoring` text;--> statement-breakpoint
ALTER TABLE `telemetry_last` ADD `outbox_pending` integer;--> statement-breakpoint
ALTER TABLE `telemetry_last` ADD `outbox_pending_bytes` integer;--> statement-breakpoint
ALTER TABLE `telemetry_rollups` ADD `monitoring_lost` text;