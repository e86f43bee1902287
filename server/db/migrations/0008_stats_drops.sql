CREATE TABLE `stats_drops` (
	`model_version_id` integer NOT NULL,
	`device_id` text NOT NULL,
	`reason` text NOT NULL,
	`bucket_start` text NOT NULL,
	`windows` integer NOT NULL,
	`rows` integer NOT NULL,
	`last_at` text NOT NULL,
	PRIMARY KEY(`model_version_id`, `bucket_start`, `reason`, `device_id`)
);
--> statement-breakpoint
CREATE INDEX `stats_drops_bucket` ON `stats_drops` (`bucket_start`);