CREATE TABLE `alerts` (
	`id` text PRIMARY KEY NOT NULL,
	`kind` text NOT NULL,
	`model_version_id` integer NOT NULL,
	`cohort` text NOT NULL,
	`features` text NOT NULL,
	`feature` text NOT NULL,
	`score` real,
	`threshold` real NOT NULL,
	`window_start` text NOT NULL,
	`window_end` text NOT NULL,
	`status` text NOT NULL,
	`opened_at` text NOT NULL,
	`updated_at` text NOT NULL,
	`closed_at` text,
	FOREIGN KEY (`model_version_id`) REFERENCES `model_versions`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `alerts_one_open` ON `alerts` (`kind`,`cohort`,`model_version_id`) WHERE status = 'open';--> statement-breakpoint
CREATE INDEX `alerts_status` ON `alerts` (`status`,`opened_at`);--> statement-breakpoint
CREATE TABLE `drift_configs` (
	`model_id` integer PRIMARY KEY NOT NULL,
	`config` text NOT NULL,
	`updated_at` text NOT NULL,
	`updated_by` text,
	FOREIGN KEY (`model_id`) REFERENCES `models`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `drift_evaluations` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`at` text NOT NULL,
	`cohort` text NOT NULL,
	`model_version_id` integer NOT NULL,
	`window_start` text NOT NULL,
	`window_end` text NOT NULL,
	`rows` integer NOT NULL,
	`verdict` text NOT NULL,
	`drifted_features` text NOT NULL,
	`report` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `drift_evaluations_pair` ON `drift_evaluations` (`cohort`,`model_version_id`,`at`);--> statement-breakpoint
CREATE INDEX `drift_evaluations_at` ON `drift_evaluations` (`at`);--> statement-breakpoint
CREATE TABLE `prediction_labels` (
	`prediction_id` text PRIMARY KEY NOT NULL,
	`label` text NOT NULL,
	`labeled_at` text NOT NULL
);
--> statement-breakpoint
CREATE TABLE `predictions` (
	`prediction_id` text PRIMARY KEY NOT NULL,
	`device_id` text,
	`model_version_id` integer NOT NULL,
	`predicted` text NOT NULL,
	`at` text NOT NULL,
	`received_at` text NOT NULL,
	FOREIGN KEY (`model_version_id`) REFERENCES `model_versions`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `predictions_version_at` ON `predictions` (`model_version_id`,`at`);--> statement-breakpoint
CREATE INDEX `predictions_device` ON `predictions` (`device_id`);--> statement-breakpoint
CREATE TABLE `reference_profiles` (
	`model_version_id` integer PRIMARY KEY NOT NULL,
	`layout` text NOT NULL,
	`sketch` text NOT NULL,
	`rows` integer NOT NULL,
	`bins` integer NOT NULL,
	`source` text NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`created_by` text,
	FOREIGN KEY (`model_version_id`) REFERENCES `model_versions`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `stats_rollups` (
	`scope` text NOT NULL,
	`key` text NOT NULL,
	`model_version_id` integer NOT NULL,
	`granularity` text NOT NULL,
	`bucket_start` text NOT NULL,
	`windows` integer NOT NULL,
	`rows` integer NOT NULL,
	`sketch` text NOT NULL,
	`updated_at` text NOT NULL,
	PRIMARY KEY(`scope`, `key`, `model_version_id`, `granularity`, `bucket_start`)
);
--> statement-breakpoint
CREATE INDEX `stats_rollups_bucket` ON `stats_rollups` (`granularity`,`bucket_start`);--> statement-breakpoint
CREATE TABLE `stats_windows` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`device_id` text NOT NULL,
	`model_version_id` integer NOT NULL,
	`bundle_id` text NOT NULL,
	`window_start` text NOT NULL,
	`window_end` text NOT NULL,
	`seq` integer NOT NULL,
	`rows` integer NOT NULL,
	`sketch` text NOT NULL,
	`received_at` text NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `stats_windows_device_seq` ON `stats_windows` (`device_id`,`seq`);--> statement-breakpoint
CREATE INDEX `stats_windows_end` ON `stats_windows` (`window_end`);--> statement-breakpoint
CREATE INDEX `stats_windows_version_start` ON `stats_windows` (`model_version_id`,`window_start`);--> statement-breakpoint
CREATE TABLE `telemetry` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`device_id` text NOT NULL,
	`seq` integer NOT NULL,
	`at` text NOT NULL,
	`interval_s` real NOT NULL,
	`inferences` integer NOT NULL,
	`errors` text NOT NULL,
	`latency` text NOT NULL,
	`queue_depth` integer NOT NULL,
	`cpu` real NOT NULL,
	`rss_bytes` integer NOT NULL,
	`disk_free_bytes` integer NOT NULL,
	`uptime_s` real NOT NULL,
	`active_bundle_id` text,
	`received_at` text NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `telemetry_device_seq` ON `telemetry` (`device_id`,`seq`);--> statement-breakpoint
CREATE INDEX `telemetry_at` ON `telemetry` (`at`);--> statement-breakpoint
CREATE TABLE `telemetry_last` (
	`device_id` text PRIMARY KEY NOT NULL,
	`at` text NOT NULL,
	`seq` integer NOT NULL,
	`cpu` real NOT NULL,
	`rss_bytes` integer NOT NULL,
	`disk_free_bytes` integer NOT NULL,
	`uptime_s` real NOT NULL,
	`queue_depth` integer NOT NULL,
	`active_bundle` text
);
--> statement-breakpoint
CREATE TABLE `telemetry_rollups` (
	`scope` text NOT NULL,
	`key` text NOT NULL,
	`bucket_start` text NOT NULL,
	`reports` integer NOT NULL,
	`inferences` integer NOT NULL,
	`error_count` integer NOT NULL,
	`errors` text NOT NULL,
	`latency` text NOT NULL,
	`first_start` text NOT NULL,
	`last_at` text NOT NULL,
	`updated_at` text NOT NULL,
	PRIMARY KEY(`scope`, `key`, `bucket_start`)
);
--> statement-breakpoint
CREATE INDEX `telemetry_rollups_bucket` ON `telemetry_rollups` (`bucket_start`);