<?php
// hold.php — what php-fpm serves in the service suite: "hi\n" at once, then
// the request holds its worker until the client leaves (a byte every 200 ms,
// so that the worker learns of the close from nginx and ends; at most 2 min).
while (ob_get_level() > 0)
    ob_end_flush();
header('Content-Type: text/plain');
echo "hi\n";
flush();
for ($i = 0; $i < 600 && !connection_aborted(); $i++) {
    usleep(200000);
    echo " ";
    flush();
}
