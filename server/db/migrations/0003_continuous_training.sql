CREATE TABLE `agent_settings` (
	`scope` text NOT NULL,
	`target` text NOT NULL,
	`settings` text NOT NULL,
	`updated_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`updated_by` text,
	PRIMARY KEY(`scope`, `target`)
);
--> statement-breakpoint
CREATE TABLE `captured_samples` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`device_id` text NOT NULL,
	`model_version_id` integer NOT NULL,
	`sample_id` text NOT NULL,
	`prediction_id` text,
	`at` text NOT NULL,
	`inputs` text NOT NULL,
	`outputs` text,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	FOREIGN KEY (`model_version_id`) REFERENCES `model_versions`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `captured_samples_device_sample` ON `captured_samples` (`device_id`,`sample_id`);--> statement-breakpoint
CREATE INDEX `captured_samples_version_at` ON `captured_samples` (`model_version_id`,`at`);--> statement-breakpoint
CREATE TABLE `dataset_versions` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`dataset_id` integer NOT NULL,
	`version` integer NOT NULL,
	`kind` text NOT NULL,
	`format` text NOT NULL,
	`artifact_sha256` text NOT NULL,
	`size` integer NOT NULL,
	`rows` integer NOT NULL,
	`columns` text NOT NULL,
	`source` text NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`created_by` text,
	FOREIGN KEY (`dataset_id`) REFERENCES `datasets`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`artifact_sha256`) REFERENCES `artifacts`(`sha256`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `dataset_versions_dataset_version` ON `dataset_versions` (`dataset_id`,`version`);--> statement-breakpoint
CREATE INDEX `dataset_versions_content` ON `dataset_versions` (`dataset_id`,`artifact_sha256`);--> statement-breakpoint
CREATE TABLE `datasets` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`name` text NOT NULL,
	`description` text,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `datasets_name_unique` ON `datasets` (`name`);--> statement-breakpoint
CREATE TABLE `job_logs` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`job_id` text NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`stream` text NOT NULL,
	`line` text NOT NULL,
	FOREIGN KEY (`job_id`) REFERENCES `jobs`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `job_logs_job` ON `job_logs` (`job_id`,`id`);--> statement-breakpoint
CREATE TABLE `jobs` (
	`id` text PRIMARY KEY NOT NULL,
	`kind` text DEFAULT 'retrain' NOT NULL,
	`model_id` integer NOT NULL,
	`status` text NOT NULL,
	`trigger` text NOT NULL,
	`trainer` text NOT NULL,
	`params` text NOT NULL,
	`parent_version_id` integer,
	`dataset_version_id` integer,
	`result_version_id` integer,
	`attempt` integer DEFAULT 0 NOT NULL,
	`max_attempts` integer DEFAULT 2 NOT NULL,
	`timeout_s` integer DEFAULT 3600 NOT NULL,
	`runner` text,
	`heartbeat_at` text,
	`upload_token_hash` text,
	`metrics` text,
	`error` text,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`started_at` text,
	`finished_at` text,
	`cancel_requested` integer DEFAULT false NOT NULL,
	FOREIGN KEY (`model_id`) REFERENCES `models`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `jobs_status` ON `jobs` (`status`,`created_at`);--> statement-breakpoint
CREATE INDEX `jobs_model` ON `jobs` (`model_id`,`created_at`);--> statement-breakpoint
CREATE TABLE `leases` (
	`name` text PRIMARY KEY NOT NULL,
	`holder` text NOT NULL,
	`expires_at` text NOT NULL
);
--> statement-breakpoint
CREATE TABLE `retrain_policies` (
	`model_id` integer PRIMARY KEY NOT NULL,
	`enabled` integer DEFAULT true NOT NULL,
	`cron` text,
	`drift_open_for_s` integer,
	`trainer` text NOT NULL,
	`data` text NOT NULL,
	`after` text NOT NULL,
	`timeout_s` integer DEFAULT 3600 NOT NULL,
	`max_attempts` integer DEFAULT 2 NOT NULL,
	`updated_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`updated_by` text,
	FOREIGN KEY (`model_id`) REFERENCES `models`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE TABLE `rollouts` (
	`id` text PRIMARY KEY NOT NULL,
	`bundle_id` text NOT NULL,
	`cohort` text NOT NULL,
	`stages` text NOT NULL,
	`stage` integer DEFAULT 0 NOT NULL,
	`status` text NOT NULL,
	`bake_s` integer NOT NULL,
	`gates` text NOT NULL,
	`last_check` text,
	`previous_bundle_id` text,
	`job_id` text,
	`stage_started_at` text NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`created_by` text,
	`updated_at` text,
	FOREIGN KEY (`bundle_id`) REFERENCES `bundles`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `rollouts_status` ON `rollouts` (`status`);--> statement-breakpoint
CREATE INDEX `rollouts_cohort` ON `rollouts` (`cohort`,`created_at`);--> statement-breakpoint
ALTER TABLE `cohorts` ADD `prefer_variant` text;--> statement-breakpoint
ALTER TABLE `model_versions` ADD `status` text DEFAULT 'ready' NOT NULL;--> statement-breakpoint
ALTER TABLE `model_versions` ADD `status_reason` text;--> statement-breakpoint
ALTER TABLE `model_versions` ADD `override` text;--> statement-breakpoint
ALTER TABLE `model_versions` ADD `variant` text;--> statement-breakpoint
ALTER TABLE `model_versions` ADD `recipe` text;--> statement-breakpoint
ALTER TABLE `model_versions` ADD `evaluation` text;--> statement-breakpoint
ALTER TABLE `model_versions` ADD `lineage` text;--> statement-breakpoint
ALTER TABLE `models` ADD `budgets` text;