SELECT 'a'
'b' AS s