CREATE TABLE `serving_history` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`device_id` text NOT NULL,
	`bundle_id` text NOT NULL,
	`model` text NOT NULL,
	`version` integer NOT NULL,
	`counter` integer NOT NULL,
	`cohort` text,
	`deployment_id` text,
	`via` text NOT NULL,
	`started_by` text,
	`started_at` text NOT NULL,
	`ended_at` text,
	`activated_at` text,
	`last_failure` text
);
--> statement-breakpoint
CREATE UNIQUE INDEX `serving_history_open` ON `serving_history` (`device_id`) WHERE ended_at IS NULL;--> statement-breakpoint
CREATE INDEX `serving_history_device` ON `serving_history` (`device_id`,`started_at`);--> statement-breakpoint
CREATE INDEX `serving_history_model` ON `serving_history` (`model`,`version`);--> statement-breakpoint
CREATE INDEX `serving_history_cohort` ON `serving_history` (`cohort`,`started_at`);--> statement-breakpoint
ALTER TABLE `deployments` ADD `kind` text DEFAULT 'deploy' NOT NULL;