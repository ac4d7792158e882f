-- Run once, by seed.sh, on the pod that starts a new cluster (the other pods receive it
-- with their first full copy). The hooks reach mariadbd as the OS user over its socket;
-- add your applications' users here. Replace the placeholder password before use.
CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED BY 'replace-me-app';
