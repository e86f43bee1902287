ALTER TABLE `device_desired` ADD `shadow` text;--> statement-breakpoint
ALTER TABLE `rollouts` ADD `shadow` text;--> statement-breakpoint
ALTER TABLE `rollouts` ADD `phase` text DEFAULT 'stages' NOT NULL;--> statement-breakpoint
ALTER TABLE `rollouts` ADD `outcomes` text;