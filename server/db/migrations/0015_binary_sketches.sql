PRAGMA foreign_keys=OFF;--> statement-breakpoint
CREATE TABLE `__new_stats_rollups` (
	`scope` text NOT NULL,
	`key` text NOT NULL,
	`model_version_id` integer NOT NULL,
	`granularity` text NOT NULL,
	`bucket_start` text NOT NULL,
	`windows` integer NOT NULL,
	`rows` integer NOT NULL,
	`sketch` blob NOT NULL,
	`updated_at` text NOT NULL,
	PRIMARY KEY(`scope`, `key`, `model_version_id`, `granularity`, `bucket_start`)
);
--> statement-breakpoint
INSERT INTO `__new_stats_rollups`("scope", "key", "model_version_id", "granularity", "bucket_start", "windows", "rows", "sketch", "updated_at") SELECT "scope", "key", "model_version_id", "granularity", "bucket_start", "windows", "rows", "sketch", "updated_at" FROM `stats_rollups`;--> statement-breakpoint
DROP TABLE `stats_rollups`;--> statement-breakpoint
ALTER TABLE `__new_stats_rollups` RENAME TO `stats_rollups`;--> statement-breakpoint
PRAGMA foreign_keys=ON;--> statement-breakpoint
CREATE INDEX `stats_rollups_scope_bucket` ON `stats_rollups` (`scope`,`granularity`,`bucket_start`);--> statement-breakpoint
CREATE TABLE `__new_stats_windows` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`device_id` text NOT NULL,
	`model_version_id` integer NOT NULL,
	`bundle_id` text NOT NULL,
	`window_start` text NOT NULL,
	`window_end` text NOT NULL,
	`seq` integer NOT NULL,
	`rows` integer NOT NULL,
	`sketch` blob NOT NULL,
	`received_at` text NOT NULL
);
--> statement-breakpoint
INSERT INTO `__new_stats_windows`("id", "device_id", "model_version_id", "bundle_id", "window_start", "window_end", "seq", "rows", "sketch", "received_at") SELECT "id", "device_id", "model_version_id", "bundle_id", "window_start", "window_end", "seq", "rows", "sketch", "received_at" FROM `stats_windows`;--> statement-breakpoint
DROP TABLE `stats_windows`;--> statement-breakpoint
ALTER TABLE `__new_stats_windows` RENAME TO `stats_windows`;--> statement-breakpoint
CREATE UNIQUE INDEX `stats_windows_device_seq` ON `stats_windows` (`device_id`,`seq`);--> statement-breakpoint
CREATE INDEX `stats_windows_end` ON `stats_windows` (`window_end`);--> statement-breakpoint
CREATE INDEX `stats_windows_version_start` ON `stats_windows` (`model_version_id`,`window_start`);