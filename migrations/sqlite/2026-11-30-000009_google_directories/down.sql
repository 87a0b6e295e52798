DROP TABLE google_directories;
