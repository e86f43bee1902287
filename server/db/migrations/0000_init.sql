CREATE TABLE `api_tokens` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`role` text NOT NULL,
	`token_hash` text NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`created_by` text,
	`expires_at` text,
	`revoked_at` text,
	`last_used_at` text
);
--> statement-breakpoint
CREATE UNIQUE INDEX `api_tokens_token_hash_unique` ON `api_tokens` (`token_hash`);--> statement-breakpoint
CREATE TABLE `artifacts` (
	`sha256` text PRIMARY KEY NOT NULL,
	`size` integer NOT NULL,
	`media_type` text NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL
);
--> statement-breakpoint
CREATE TABLE `audit_log` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`actor` text NOT NULL,
	`action` text NOT NULL,
	`target` text NOT NULL,
	`details` text
);
--> statement-breakpoint
CREATE INDEX `audit_log_at` ON `audit_log` (`created_at`);--> statement-breakpoint
CREATE TABLE `bundles` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`model_version_id` integer NOT NULL,
	`definition` text NOT NULL,
	`files` text NOT NULL,
	`min_agent_version` text NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`created_by` text,
	FOREIGN KEY (`model_version_id`) REFERENCES `model_versions`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `bundles_model_version` ON `bundles` (`model_version_id`);--> statement-breakpoint
CREATE INDEX `bundles_name` ON `bundles` (`name`);--> statement-breakpoint
CREATE TABLE `cohorts` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`name` text NOT NULL,
	`selector` text NOT NULL,
	`description` text,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `cohorts_name_unique` ON `cohorts` (`name`);--> statement-breakpoint
CREATE TABLE `deployments` (
	`id` text PRIMARY KEY NOT NULL,
	`bundle_id` text NOT NULL,
	`target_kind` text NOT NULL,
	`target` text NOT NULL,
	`device_count` integer NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`created_by` text,
	FOREIGN KEY (`bundle_id`) REFERENCES `bundles`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE TABLE `device_desired` (
	`device_id` text PRIMARY KEY NOT NULL,
	`counter` integer NOT NULL,
	`bundle_id` text NOT NULL,
	`deployment_id` text,
	`cohort` text,
	`manifest` text NOT NULL,
	`expires_at` text NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	FOREIGN KEY (`device_id`) REFERENCES `devices`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`bundle_id`) REFERENCES `bundles`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `device_desired_bundle` ON `device_desired` (`bundle_id`);--> statement-breakpoint
CREATE TABLE `devices` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text,
	`status` text NOT NULL,
	`labels` text NOT NULL,
	`facts` text NOT NULL,
	`credential_hash` text NOT NULL,
	`enroll_token_id` text,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`approved_at` text,
	`revoked_at` text,
	`online` integer DEFAULT false NOT NULL,
	`last_seen` text,
	`reported` text,
	`update_state` text
);
--> statement-breakpoint
CREATE INDEX `devices_status` ON `devices` (`status`);--> statement-breakpoint
CREATE TABLE `enroll_tokens` (
	`id` text PRIMARY KEY NOT NULL,
	`token_hash` text NOT NULL,
	`labels` text NOT NULL,
	`auto_approve` integer NOT NULL,
	`expires_at` text,
	`max_uses` integer,
	`uses` integer DEFAULT 0 NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`created_by` text,
	`revoked_at` text
);
--> statement-breakpoint
CREATE UNIQUE INDEX `enroll_tokens_token_hash_unique` ON `enroll_tokens` (`token_hash`);--> statement-breakpoint
CREATE TABLE `key_lists` (
	`version` integer PRIMARY KEY NOT NULL,
	`root_keyid` text NOT NULL,
	`envelope` text NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`created_by` text
);
--> statement-breakpoint
CREATE TABLE `model_aliases` (
	`model_id` integer NOT NULL,
	`alias` text NOT NULL,
	`version_id` integer NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	PRIMARY KEY(`model_id`, `alias`),
	FOREIGN KEY (`model_id`) REFERENCES `models`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`version_id`) REFERENCES `model_versions`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `model_aliases_version` ON `model_aliases` (`version_id`);--> statement-breakpoint
CREATE TABLE `model_versions` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`model_id` integer NOT NULL,
	`version` integer NOT NULL,
	`artifact_sha256` text NOT NULL,
	`size` integer NOT NULL,
	`format` text DEFAULT 'onnx' NOT NULL,
	`ir_version` integer,
	`opset` integer,
	`producer` text,
	`inputs` text NOT NULL,
	`outputs` text NOT NULL,
	`param_count` integer NOT NULL,
	`initializer_bytes` integer NOT NULL,
	`notes` text,
	`metrics` text NOT NULL,
	`tags` text NOT NULL,
	`parent_version_id` integer,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`created_by` text,
	FOREIGN KEY (`model_id`) REFERENCES `models`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`artifact_sha256`) REFERENCES `artifacts`(`sha256`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `model_versions_model_version` ON `model_versions` (`model_id`,`version`);--> statement-breakpoint
CREATE INDEX `model_versions_parent` ON `model_versions` (`parent_version_id`);--> statement-breakpoint
CREATE TABLE `models` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`name` text NOT NULL,
	`description` text,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `models_name_unique` ON `models` (`name`);--> statement-breakpoint
CREATE TABLE `release_keys` (
	`keyid` text PRIMARY KEY NOT NULL,
	`public_key` text NOT NULL,
	`private_key_pem` text NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`retired_at` text
);
